"""The package's type hints hold, under the mypy block in pyproject.toml (a quality gate, like
the docs test): ``py.typed`` tells users' type checkers to trust them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_issues_in_the_package(tmp_path):
    api = pytest.importorskip("mypy.api")  # a test extra; CI's full install always has it

    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path),
                                str(ROOT / "recommender")])
    assert status == 0, out + err
    assert (ROOT / "recommender" / "py.typed").is_file()
