"""Issue 16, item 2: ``recommender plugin new NAME`` writes a plugin package that installs and
passes its tests as generated, checked for real in a fresh venv.

The venv is made as tests/test_plugin_install.py makes one (``python -m venv``, then pip),
kept fast: the checkout and the generated package are installed editable with ``--no-deps
--no-build-isolation``, and the runtime dependencies are read from this interpreter's
site-packages through a ``.pth`` file; only the build backend (hatchling, editables: two
small wheels, cached by pip) is installed into the venv when this interpreter lacks it. (It is
not a test dependency: tests/test_build.py stands in for hatchling when it is absent.)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender.cli.app import app, load_command_groups
from recommender.scaffold import ScaffoldError, check_name, files

ROOT = Path(__file__).resolve().parents[1]


def sh(*cmd: object, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECOMMENDER_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["RECOMMENDER_COMPILE"] = "0"
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, env=env, **kw)  # type: ignore[call-overload]


def test_names_are_checked() -> None:
    assert check_name("car_wash") == "car_wash"
    for bad in ("Car", "car-wash", "1car", "c", "car__wash", "car_", "a" * 41):
        with pytest.raises(ScaffoldError):
            check_name(bad)


def test_the_cli_writes_the_package_and_refuses_a_used_folder(tmp_path: Path) -> None:
    load_command_groups()
    runner = CliRunner()
    result = runner.invoke(app, ["plugin", "new", "car_wash", "--dir", str(tmp_path / "cw")])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(tmp_path / "cw")) for p in (tmp_path / "cw").rglob("*") if p.is_file())
    assert written == sorted(files("car_wash"))
    assert {"pyproject.toml", "recommender_car_wash/__init__.py", "recommender_car_wash/car_wash.yaml",
            "scenarios/car_wash.yaml", "tests/test_car_wash.py"} <= set(written)
    again = runner.invoke(app, ["plugin", "new", "car_wash", "--dir", str(tmp_path / "cw")])
    assert again.exit_code == 2 and "not an empty folder" in again.output
    bad = runner.invoke(app, ["plugin", "new", "Car-Wash", "--dir", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "invalid plugin name" in bad.output


def test_the_package_uses_the_shared_helpers(tmp_path: Path) -> None:
    text = files("car_wash")
    assert "Trade(VERTICAL" in text["recommender_car_wash/__init__.py"]
    assert "TradePluginTests" in text["tests/test_car_wash.py"]
    assert '[project.entry-points.recommender]\ncar_wash = "recommender_car_wash"' in text["pyproject.toml"]


@pytest.mark.slow
def test_the_generated_plugin_installs_and_passes_its_tests_in_a_fresh_venv(tmp_path: Path) -> None:
    plugin = tmp_path / "car_wash"
    load_command_groups()
    assert CliRunner().invoke(app, ["plugin", "new", "car_wash", "--dir", str(plugin)]).exit_code == 0

    venv = tmp_path / "venv"
    assert sh(sys.executable, "-m", "venv", venv).returncode == 0
    purelib = sh(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    # the dependencies of this interpreter (its site-packages, with their own .pth files),
    # after the venv's own packages ("zz": read last)
    (Path(purelib.stdout.strip()) / "zz_dependencies.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
    if importlib.util.find_spec("hatchling") is None or importlib.util.find_spec("editables") is None:
        p = sh(*pip, "install", "--quiet", "hatchling>=1.21", "editables>=0.5")
        assert p.returncode == 0, p.stderr[-3000:]
    p = sh(*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", ROOT, "-e", plugin)
    assert p.returncode == 0, p.stderr[-3000:]

    tests = sh(venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", cwd=plugin)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert " passed" in tests.stdout and "skipped" not in tests.stdout, tests.stdout[-2000:]

    check = sh(venv / "bin" / "recommender", "plugins", "--check", cwd=plugin)
    assert check.returncode == 0 and "car_wash" in check.stdout, check.stdout + check.stderr
    book = sh(venv / "bin" / "recommender", "rules", "test", "scenarios", cwd=plugin)
    assert book.returncode == 0 and "3 passed" in book.stdout, book.stdout + book.stderr
