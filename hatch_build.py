"""Wheel build hook: with ``RECOMMENDER_COMPILE=1``, compile the hot modules with mypyc.

``RECOMMENDER_COMPILE=1 pip install .`` builds a wheel whose matcher, rulebook, pipeline,
ranking, explanation and template modules are C extensions (mypyc compiles the same typed
Python; the .py files ship alongside, for reading). Without the variable, and for editable
installs (whose point is that the .py you edit is what runs), the package is pure Python.
The compilation happens in a scratch copy of the package, so the checkout never holds
compiled files that would shadow its sources.
"""

from __future__ import annotations

import os
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


def _wanted() -> bool:
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"{ENV}={os.environ[ENV]!r}: expected 1 (compile with mypyc) or 0")


class CompileHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        # mypyc type-checks what the modules import, so the runtime dependencies too
        return ["mypy>=1.10", "setuptools>=69", *self.metadata.core.dependencies] if _wanted() else []

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or not _wanted():
            return
        if version == "editable":
            self.app.display_warning(f"{ENV}=1 is ignored for an editable install: it runs the .py files you edit")
            return
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
