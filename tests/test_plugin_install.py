"""The one slow test: pip-install a business plugin into a fresh venv, then uninstall it.

Installing ``plugins/auto_repair`` must change what ``recommender recommend`` returns for a
flat-tire context with no change to the core, and uninstalling it must revert the answer.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTEXT = {"customer": {"id": "c-9", "tenure_years": 4, "lifetime_value": 1800},
           "interaction": {"issue": "flat_tire", "cost": 25, "channel": "in_person"},
           "business": {"vertical": "auto_repair"}}

pytestmark = pytest.mark.slow


def sh(*cmd, **kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECOMMENDER_", "VIRTUAL_ENV", "PYTHONPATH"))}
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, env=env, **kw)


def gestures(venv, ctx_file):
    p = sh(venv / "bin" / "recommender", "recommend", ctx_file, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    return [r["gesture_id"] for r in out["recommendations"]], out


def test_installing_and_uninstalling_auto_repair_changes_recommendations(tmp_path):
    venv = tmp_path / "venv"
    assert sh(sys.executable, "-m", "venv", venv).returncode == 0
    pip = venv / "bin" / "pip"
    p = sh(pip, "install", "--quiet", ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    ctx_file = tmp_path / "ctx.json"
    ctx_file.write_text(json.dumps(CONTEXT))

    before, _ = gestures(venv, ctx_file)
    assert before and not any(g.startswith("auto_") for g in before)

    p = sh(pip, "install", "--quiet", "--no-deps", ROOT / "plugins" / "auto_repair")
    assert p.returncode == 0, p.stderr[-3000:]
    with_plugin, out = gestures(venv, ctx_file)
    assert "auto_waive_flat_fee" in with_plugin, out
    listed = sh(venv / "bin" / "recommender", "plugins", "--json")
    names = {i["name"]: i for i in json.loads(listed.stdout)["plugins"]}
    assert names["auto_repair"]["source"] == "entrypoint" and names["auto_repair"]["version"] == "0.1.0"

    assert sh(pip, "uninstall", "--yes", "recommender-auto-repair").returncode == 0
    after, _ = gestures(venv, ctx_file)
    assert after == before
