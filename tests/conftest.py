import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# Installed plugins must not change what the core tests see.
os.environ.setdefault("RECOMMENDER_TEST", "1")
