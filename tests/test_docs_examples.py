"""Issue 16, item 6: the examples in README.md and docs/*.md run in order, as written.

Each document runs in a fresh temporary folder (its working directory, and the user data
directory where ``open_store()`` puts its default file), in one namespace, block after block:

- every ```python block runs, unless an HTML comment right before it says
  ``<!-- example: skip REASON -->`` (a hook's signature, a fragment, a file's contents);
- a ```bash / ```sh / ```console block runs only when marked ``<!-- example: run -->``: each
  command (``$ `` lines in a console block; lines joined at a trailing ``\\``) in bash, with
  ``recommender`` on the PATH, and must exit 0;
- ``<!-- example-setup: ... -->`` holds hidden Python run at that point (files a later block
  reads, a server to talk to). It may set ``EXAMPLE_URL`` (the service's address, put in place
  of ``http://127.0.0.1:8000`` in later blocks) and ``EXAMPLE_CLEANUP`` (callables run after the
  document).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?P<marker><!--\s*example:\s*(?P<how>skip|run)\b[^>]*-->\s*\n)?"
                   r"(?P<indent>[ \t]*)```(?P<lang>[a-z]*)\n(?P<body>.*?)\n(?P=indent)```"
                   r"|<!--\s*example-setup:?\s*\n(?P<setup>.*?)-->", re.S)
SERVICE = "http://127.0.0.1:8000"


def blocks(path: Path) -> Iterator[tuple[int, str, str]]:
    """``(line, kind, code)`` to run, in order: kind ``python``, ``shell`` or ``setup``."""
    text = path.read_text(encoding="utf-8")
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if m.group("setup") is not None:
            yield line, "setup", textwrap.dedent(m.group("setup"))
            continue
        body = textwrap.dedent("\n".join(l[len(m.group("indent")):] for l in m.group("body").split("\n")))
        lang, how = m.group("lang"), m.group("how")
        if lang == "python" and how != "skip":
            yield line, "python", body
        elif lang in ("bash", "sh", "console") and how == "run":
            yield line, "shell", _commands(body, lang == "console")


def _commands(body: str, console: bool) -> str:
    lines = [l[2:] for l in body.splitlines() if l.startswith("$ ")] if console else body.splitlines()
    return "\n".join(l for l in lines if l.strip() and not l.lstrip().startswith("#"))


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_the_examples_run_as_written(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    todo = list(blocks(doc))
    if not todo:
        pytest.skip("no runnable example")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECOMMENDER_DB_URL", raising=False)
    monkeypatch.delenv("RECOMMENDER_POLICY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    namespace: dict[str, Any] = {"__name__": "__example__", "__file__": str(tmp_path / "example.py")}
    try:
        for line, kind, code in todo:
            where = f"{doc.relative_to(ROOT)}:{line}"
            if "EXAMPLE_URL" in namespace:
                code = code.replace(SERVICE, namespace["EXAMPLE_URL"])
            if kind == "shell":
                env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
                p = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True,
                                   timeout=120, env=env)
                assert p.returncode == 0, f"{where}: {code}\n{p.stdout[-2000:]}{p.stderr[-2000:]}"
                continue
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the docs' own examples
            except Exception as exc:
                raise AssertionError(f"{where}: the example fails: {type(exc).__name__}: {exc}\n{code}") from exc
    finally:
        for cleanup in namespace.get("EXAMPLE_CLEANUP", []):
            cleanup()


def test_the_harness_finds_the_examples() -> None:
    found = {doc.name: [kind for _, kind, _ in blocks(doc)] for doc in DOCS}
    assert "python" in found["README.md"]
    assert found["http.md"].count("setup") == 1 and "python" in found["http.md"]
    assert "python" in found["memory.md"] and "python" in found["backtest.md"] and "shell" in found["plugins.md"]
