import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# Installed plugins must not change what the core tests see.
os.environ.setdefault("RECOMMENDER_TEST", "1")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker whose session is over ignores SIGINT. execnet sends its own
    process one when the worker is still finishing 5 s after the controller closed it (the
    final garbage collections on a busy machine); the KeyboardInterrupt then surfaced in
    whatever Python ran next, hypothesis' gc callback, as a PytestUnraisableExceptionWarning.
    (xdist reports the worker finished after this hook, so the signal cannot come earlier.)"""
    if hasattr(session.config, "workerinput"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
