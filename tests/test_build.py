"""Which build runs: pure Python (editable installs) or the mypyc-compiled wheel.

CI runs the whole suite twice: on the README's editable install, and on a
``RECOMMENDER_COMPILE=1`` wheel with ``RECOMMENDER_EXPECT_COMPILED=1`` set (see ``.ci/run``).
This pins that each run tests the build it means to.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import recommender

ROOT = Path(__file__).resolve().parent.parent


def test_the_suite_runs_on_the_build_it_asks_for():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["hooks"]["custom"]["compile"]
    wanted = sorted(p.removesuffix(".py").replace("/", ".") for p in listed)
    assert wanted and all(m.startswith("recommender.") for m in wanted)
    if os.environ.get("RECOMMENDER_EXPECT_COMPILED") == "1":
        assert recommender.compiled_modules() == wanted
        assert not recommender.__file__.startswith(str(ROOT / "recommender"))  # the installed wheel
    else:
        assert recommender.compiled_modules() == []  # what runs is the .py files in the checkout
