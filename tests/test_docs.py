"""Docs and specs stay in sync: every hook is documented with its exact arguments."""

import inspect
import re
from pathlib import Path

from recommender import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_hook_is_documented_with_its_signature():
    text = (DOCS / "plugins.md").read_text()
    for name in hookspecs.__all__:
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        found = []
        for m in re.finditer(rf"def {name}\(((?:[^()]|\([^()]*\))*)\)", text, re.S):
            found.append([p.split(":")[0].strip() for p in re.split(r",(?![^\[]*\])", m.group(1)) if p.strip()])
        assert params in found, f"{name}({', '.join(params)}) is not documented in docs/plugins.md: {found}"


def test_every_hook_has_a_docstring_saying_what_it_returns():
    for name in hookspecs.__all__:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert ":returns:" in doc and "called" in doc.lower(), name
