"""Print pip constraints pinning every runtime dependency to its declared lower bound.

CI installs the package with these (``pip install -c``) and runs the suite, so the lower
bounds in pyproject.toml stay true: the core dependencies and the ``postgres``, ``server``
and ``dask`` extras (the test tools are not pinned: they are not what users install).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

EXTRAS = ("postgres", "server", "dask")
SPEC = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9A-Za-z.]*)\s*$")


def constraints(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    out = []
    for requirement in requirements:
        match = SPEC.match(requirement)
        if match is None:
            raise SystemExit(f"{pyproject}: {requirement!r} has no plain '>=' lower bound to test")
        out.append(f"{match[1]}=={match[2]}")
    return out


if __name__ == "__main__":
    print("\n".join(constraints(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"))))
