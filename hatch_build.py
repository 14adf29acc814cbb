"""Wheel build hook: compile the hot modules with mypyc, by default.

``pip install .`` (any non-editable install) builds a wheel whose matcher, rulebook,
pipeline, ranking, explanation and template modules are C extensions (mypyc compiles the
same typed Python; the .py files ship alongside, for reading), as black and mypy ship
compiled wheels. ``RECOMMENDER_COMPILE``:

* unset (the default): compile when a C compiler and the Python headers are there; without
  them, or if compiling fails, build the pure-Python package with a warning that says why
  and what would give the compiled build (pip shows build output with ``pip install -v``;
  ``recommender --version`` says which build runs);
* ``1``: compile, and fail the build if that is not possible (CI uses this);
* ``0``: pure Python, no attempt and no warning.

Editable installs are always pure Python: their point is that the .py you edit is what runs.
The compilation happens in a scratch copy of the package, so the checkout never holds
compiled files that would shadow its sources.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ENV = "RECOMMENDER_COMPILE"

_SETUP = """\
from mypyc.build import mypycify
from setuptools import setup

setup(name="recommender-compiled", ext_modules=mypycify({modules!r}, opt_level="3", group_name="recommender"))
"""

_MYPY_INI = """\
[mypy]
python_version = {version}

[mypy-durable_rules_engine]
ignore_missing_imports = True
"""

_HOW = ("for the compiled build (recommend() about 1.3x faster), install a C compiler and the Python "
        "headers (e.g. `apt install gcc python3-dev`) and reinstall; set RECOMMENDER_COMPILE=0 to build "
        "pure Python without this warning")


def _mode() -> str:
    """``auto`` (unset: compile if possible), ``on`` (must compile) or ``off``."""
    value = os.environ.get(ENV, "").strip().lower()
    if value == "":
        return "auto"
    if value in ("0", "false", "no"):
        return "off"
    if value in ("1", "true", "yes"):
        return "on"
    raise ValueError(f"{ENV}={os.environ[ENV]!r}: expected 1 (compile with mypyc), 0 (pure Python) or unset (compile "
                     "when a C compiler is available)")


def toolchain_problem() -> str | None:
    """Why a C extension cannot be built here (None: it looks possible). Checks the C compiler
    setuptools would use (``CC``, else the one Python was built with) and ``Python.h``."""
    if sys.platform == "win32":  # MSVC is found by setuptools itself; a failure falls back below
        return None
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    try:
        exe = shlex.split(cc)[0]
    except (ValueError, IndexError):
        return f"the C compiler setting CC={cc!r} cannot be read"
    if shutil.which(exe) is None:
        return f"no C compiler: {exe!r} is not on PATH"
    include = sysconfig.get_paths().get("include")
    if not include or not (Path(include) / "Python.h").is_file():
        return f"the Python headers are missing (no Python.h in {include})"
    return None


def mypyc_problem() -> str | None:
    """Why mypyc cannot run in this build environment (None: it can). Asked only when building,
    after the dependencies above are installed."""
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc (part of mypy) is not installed in the build environment"
    return None


def _editable_requested() -> bool:
    """Whether hatchling is asked for an editable build's requirements (the hook cannot be told
    otherwise when it lists its dependencies)."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "get_requires_for_build_editable":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


class CompileHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        # mypyc type-checks what the modules import, so the runtime dependencies too
        mode = _mode()
        if mode == "off" or _editable_requested() or (mode == "auto" and toolchain_problem()):
            return []
        return ["mypy>=1.10", "setuptools>=69", *self.metadata.core.dependencies]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        mode = _mode()
        if self.target_name != "wheel" or mode == "off":
            return
        if version == "editable":
            if mode == "on":
                self.app.display_warning(f"{ENV}=1 is ignored for an editable install: it runs the .py files you edit")
            return
        if mode == "auto":
            problem = toolchain_problem() or mypyc_problem()
            if problem is not None:
                self.app.display_warning(f"recommender: building the pure-Python package: {problem}; {_HOW}")
                return
        try:
            self._compile(build_data)
        except Exception as exc:
            if mode == "on":
                raise
            self.app.display_warning(f"recommender: building the pure-Python package: compiling with mypyc failed "
                                     f"({str(exc).strip()[-2000:]}); {_HOW}")

    def _compile(self, build_data: dict[str, Any]) -> None:
        modules = list(self.config.get("compile", []))
        if not modules:
            raise ValueError("[tool.hatch.build.hooks.custom] compile: list the modules to compile")
        self._scratch = tempfile.mkdtemp(prefix="recommender-mypyc-")
        scratch = Path(self._scratch)
        shutil.copytree(Path(self.root) / "recommender", scratch / "recommender",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
        (scratch / "setup.py").write_text(_SETUP.format(modules=modules))
        (scratch / "mypy.ini").write_text(_MYPY_INI.format(version=f"{sys.version_info[0]}.{sys.version_info[1]}"))
        self.app.display_info(f"compiling {len(modules)} modules with mypyc (about a minute)")
        done = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=scratch,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode:
            raise RuntimeError(f"mypyc failed (exit {done.returncode}):\n{done.stdout[-4000:]}")
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        built = sorted(p for p in scratch.rglob(f"*{suffix}") if "build" not in p.relative_to(scratch).parts)
        if len([p for p in built if p.parent.name == "recommender"]) != len(modules):
            raise RuntimeError(f"mypyc built {[p.name for p in built]}, expected one per module of {modules}")
        for path in built:
            build_data["force_include"][str(path)] = str(path.relative_to(scratch))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
