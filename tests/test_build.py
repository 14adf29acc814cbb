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


# -- the build hook (hatch_build.py): compiled by default, pure Python as a fallback ------------


def _hook_module(monkeypatch):
    """hatch_build, imported with a stand-in for hatchling's hook interface when hatchling is
    not installed here (it lives in the build environment)."""
    import importlib
    import sys
    import types

    try:
        import hatchling.builders.hooks.plugin.interface  # noqa: F401
    except ImportError:
        stub = types.ModuleType("hatchling.builders.hooks.plugin.interface")

        class BuildHookInterface:
            def __init__(self, *args, **kwargs):
                pass

        stub.BuildHookInterface = BuildHookInterface
        for name in ("hatchling", "hatchling.builders", "hatchling.builders.hooks", "hatchling.builders.hooks.plugin"):
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        monkeypatch.setitem(sys.modules, "hatchling.builders.hooks.plugin.interface", stub)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.delitem(sys.modules, "hatch_build", raising=False)
    return importlib.import_module("hatch_build")


class _App:
    def __init__(self):
        self.warnings: list[str] = []
        self.infos: list[str] = []

    def display_warning(self, message):
        self.warnings.append(message)

    def display_info(self, message):
        self.infos.append(message)


def _hook(hb, target="wheel"):
    hook = object.__new__(hb.CompileHook)
    hook.app, hook.target_name, hook.root = _App(), target, str(ROOT)
    hook.config = {"compile": ["recommender/engine.py"]}
    hook.metadata = types_ns(core=types_ns(dependencies=["pydantic>=2.7"]))
    compiled: list[dict] = []
    hook._compile = lambda build_data: compiled.append(build_data)
    return hook, compiled


def types_ns(**kw):
    import types

    return types.SimpleNamespace(**kw)


def test_a_plain_install_compiles_when_it_can(monkeypatch):
    hb = _hook_module(monkeypatch)
    monkeypatch.delenv("RECOMMENDER_COMPILE", raising=False)
    monkeypatch.setattr(hb, "toolchain_problem", lambda: None)
    monkeypatch.setattr(hb, "mypyc_problem", lambda: None)
    hook, compiled = _hook(hb)
    assert "mypy>=1.10" in hook.dependencies() and "pydantic>=2.7" in hook.dependencies()
    hook.initialize("standard", {"force_include": {}})
    assert len(compiled) == 1 and hook.app.warnings == []
    compiled.clear()
    hook.initialize("editable", {"force_include": {}})  # editable installs stay pure, silently
    assert compiled == [] and hook.app.warnings == []


def test_without_a_c_compiler_a_plain_install_falls_back_to_pure_python_and_says_why(monkeypatch):
    hb = _hook_module(monkeypatch)
    monkeypatch.delenv("RECOMMENDER_COMPILE", raising=False)
    monkeypatch.setenv("CC", "no-such-compiler-here")
    assert hb.toolchain_problem() == "no C compiler: 'no-such-compiler-here' is not on PATH"
    hook, compiled = _hook(hb)
    assert hook.dependencies() == []  # nothing to install for a build that will not compile
    hook.initialize("standard", {"force_include": {}})
    assert compiled == []
    [warning] = hook.app.warnings
    assert "building the pure-Python package: no C compiler" in warning
    assert "install a C compiler and the Python headers" in warning and "RECOMMENDER_COMPILE=0" in warning


def test_without_mypyc_in_the_build_environment_a_plain_install_is_pure_python(monkeypatch):
    hb = _hook_module(monkeypatch)
    monkeypatch.delenv("RECOMMENDER_COMPILE", raising=False)
    monkeypatch.setattr(hb, "toolchain_problem", lambda: None)
    monkeypatch.setattr(hb, "mypyc_problem", lambda: "mypyc (part of mypy) is not installed in the build environment")
    hook, compiled = _hook(hb)
    hook.initialize("standard", {"force_include": {}})
    assert compiled == [] and "mypyc (part of mypy) is not installed" in hook.app.warnings[0]


def test_a_failed_compile_falls_back_unless_it_was_asked_for(monkeypatch):
    import pytest

    hb = _hook_module(monkeypatch)
    monkeypatch.setattr(hb, "toolchain_problem", lambda: None)
    monkeypatch.setattr(hb, "mypyc_problem", lambda: None)

    def fails(build_data):
        raise RuntimeError("mypyc failed (exit 1): error: gcc: internal compiler error")

    monkeypatch.delenv("RECOMMENDER_COMPILE", raising=False)
    hook, _ = _hook(hb)
    hook._compile = fails
    data = {"force_include": {}}
    hook.initialize("standard", data)
    assert data == {"force_include": {}}
    assert "compiling with mypyc failed" in hook.app.warnings[0] and "internal compiler error" in hook.app.warnings[0]
    monkeypatch.setenv("RECOMMENDER_COMPILE", "1")  # asked for: a failure fails the build (CI)
    hook, _ = _hook(hb)
    hook._compile = fails
    with pytest.raises(RuntimeError, match="internal compiler error"):
        hook.initialize("standard", {"force_include": {}})


def test_recommender_compile_0_builds_pure_python_without_a_word(monkeypatch):
    import pytest

    hb = _hook_module(monkeypatch)
    monkeypatch.setenv("RECOMMENDER_COMPILE", "0")
    hook, compiled = _hook(hb)
    assert hook.dependencies() == []
    hook.initialize("standard", {"force_include": {}})
    assert compiled == [] and hook.app.warnings == []
    monkeypatch.setenv("RECOMMENDER_COMPILE", "maybe")
    with pytest.raises(ValueError, match="expected 1 .* 0 .* or unset"):
        hook.dependencies()


def test_an_editable_install_asks_for_no_compiler_tools(monkeypatch):
    hb = _hook_module(monkeypatch)
    monkeypatch.delenv("RECOMMENDER_COMPILE", raising=False)
    monkeypatch.setattr(hb, "toolchain_problem", lambda: None)
    hook, _ = _hook(hb)

    def get_requires_for_build_editable():  # as hatchling's PEP 660 hook calls it
        return hook.dependencies()

    assert get_requires_for_build_editable() == []
    assert hook.dependencies() != []


def test_pip_builds_a_pure_wheel_without_a_c_compiler(tmp_path):
    """End to end: ``pip wheel .`` where no C compiler is found: a pure-Python wheel and the
    warning, not a failed install."""
    import subprocess
    import sys

    import pytest

    env = {**os.environ, "CC": "no-such-compiler-here"}
    env.pop("RECOMMENDER_COMPILE", None)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=600, env=env)
    if done.returncode and "hatchling" in done.stdout + done.stderr and "No matching distribution" in done.stdout + done.stderr:
        pytest.skip("no package index to set up the build environment from")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [p.name for p in tmp_path.glob("*.whl")] == ["service_recommender-0.1.0-py3-none-any.whl"]
    assert "building the pure-Python package: no C compiler" in done.stdout + done.stderr
