"""Start-up stays lean (issue 17, item 3): what ``recommender recommend`` (warm rule cache) and
``recommender --help`` import, pinned by module, not by time; and ``import recommender``
still gives the whole public API (each name imported on first use). The pins hold for every
typer the project allows: from 0.17 on, typer imports rich only to print help or an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import recommender

EXAMPLE = {"business": {"id": "shop"}, "customer": {"tenure_years": 3},
           "interaction": {"issue": "flat_tire", "cost": 20, "channel": "in_person"}}

#: Never needed to recommend from a warm cache, nor to print help.
HEAVY = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "httpx", "psycopg", "dask", "ruamel.yaml",
         "yaml", "recommender.service", "recommender.memory", "recommender.backtest", "recommender.yaml_fast",
         "recommender.yaml_ruamel", "recommender.scenarios")
#: Built or loaded only when used: the pack models (a warm cache validates no pack), rich's emoji
#: table (the CLI prints text as written).
UNUSED = ("model:Pack", "model:Rule", "model:Gesture", "model:CostFormula", "model:_PackFile", "rich._emoji_codes")
#: The other commands' groups: ``recommend`` skips them.
GROUPS = ("recommender.cli.serve_cmd", "recommender.cli.memory_cmd", "recommender.cli.backtest_cmd")


@pytest.fixture(scope="module")
def rich_console() -> set[str]:
    """What importing rich's console loads by itself: up to rich 14.3.0 at least that includes its
    emoji table (14.3.4 and 15 read it only for an emoji code), which no setting of ours avoids; the
    checks of commands that print through rich are about what our code adds to it."""
    p = subprocess.run([sys.executable, "-c", "import json, sys, rich.console; print(json.dumps(sorted(sys.modules)))"],
                       capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(p.stdout))


def imported(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the CLI in a fresh interpreter; the modules it had imported when it exited, and
    ``model:NAME`` for each pack model whose validator was built (they are built on first use)."""
    dump = tmp_path / "modules.json"
    built = ("[f'model:{n}' for n in ('Pack', 'Rule', 'Gesture', 'CostFormula', '_PackFile') "
             "if 'recommender.packs' in sys.modules and sys.modules['recommender.packs'].__dict__[n].__pydantic_complete__]")
    code = ("import atexit, json, sys\n"
            f"atexit.register(lambda: open({str(dump)!r}, 'w').write(json.dumps(sorted(sys.modules) + {built})))\n"
            "from recommender.cli import main\n"
            f"sys.argv = ['recommender', *{list(args)!r}]\n"
            "main()\n")
    env = {**os.environ, "RECOMMENDER_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
    env.pop("RECOMMENDER_CACHE", None)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    return p, set(json.loads(dump.read_text()))


def test_recommend_from_a_warm_cache_imports_only_what_it_runs(tmp_path, rich_console):
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps(EXAMPLE))
    cold, cold_modules = imported(tmp_path, "recommend", str(ctx), "--json")
    assert cold.returncode == 0, cold.stderr
    warm, modules = imported(tmp_path, "recommend", str(ctx), "--json")
    assert warm.returncode == 0, warm.stderr
    assert json.loads(warm.stdout)["recommendations"] == json.loads(cold.stdout)["recommendations"]
    assert "recommender.yaml_fast" in cold_modules  # the cold run read the packs: the warm one, the cache
    assert "model:Pack" in cold_modules and "model:Rule" in cold_modules  # validated when read
    assert "recommender.core" in modules and "durable_rules_engine" in modules
    # --json into a pipe: no table, and no rich at all (the JSON is printed as rich would print it)
    assert not [m for m in (*HEAVY, *GROUPS, *UNUSED, "rich.table", "rich.console") if m in modules]
    table, modules = imported(tmp_path, "recommend", str(ctx))
    assert table.returncode == 0 and "Recommended now" in table.stdout
    assert not [m for m in (*HEAVY, *GROUPS, *UNUSED) if m in modules - rich_console]


def test_text_is_printed_as_written_never_as_emoji(tmp_path, rich_console):
    """The consoles do not read emoji codes: a file named ':x:' is named as such (it was shown
    as an emoji), and rich's emoji table is never loaded."""
    p, modules = imported(tmp_path, "recommend", str(tmp_path / ":x:"))
    assert p.returncode == 2
    assert f"cannot read context file {tmp_path / ':x:'}:" in p.stderr and "\u274c" not in p.stderr
    assert "rich._emoji_codes" not in modules - rich_console


def test_json_printed_without_rich_is_the_text_rich_prints(tmp_path):
    """Into a pipe or a file ``print_json`` writes the text itself; it must be byte for byte what
    rich's console printed there (indent 2, non-ASCII as written, no colour)."""
    import io

    from rich.console import Console

    from recommender import Recommender
    from recommender.cli.app import LazyConsole

    rec = Recommender(autoload=False)
    texts = [rec.recommend(EXAMPLE).model_dump_json(), rec.explain(EXAMPLE, full=True).model_dump_json(),
             json.dumps({"a": "é [b]x[/b] :x: \u2028 \\ \t", "n": [1.5, 1e-7, 10**20, None, True], "e": {}, "l": []})]
    for text in texts:
        expected = io.StringIO()
        Console(file=expected, highlight=False, soft_wrap=True, emoji=False).print_json(text)
        got = io.StringIO()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "stdout", got)
            LazyConsole(highlight=False, soft_wrap=True, emoji=False).print_json(text)
        assert got.getvalue() == expected.getvalue()


@pytest.mark.parametrize("env, coloured, by_rich", [({}, False, False), ({"FORCE_COLOR": "1"}, True, True),
                                                    ({"TTY_COMPATIBLE": "0"}, False, True)])
def test_json_is_printed_without_rich_only_where_rich_would_not_colour_it(tmp_path, monkeypatch, env, coloured, by_rich):
    """A pipe gets the JSON without rich; with one of rich's switches (FORCE_COLOR,
    TTY_COMPATIBLE) set, rich prints it and decides the colour, as before."""
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps(EXAMPLE))
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    p, modules = imported(tmp_path, "recommend", str(ctx), "--json")
    assert p.returncode == 0, p.stderr
    assert ("\x1b[" in p.stdout) is coloured
    assert ("rich.console" in modules) is by_rich
    if not coloured:
        assert json.loads(p.stdout)["recommendations"]


def test_help_imports_no_models_and_lists_every_command_group(tmp_path):
    p, modules = imported(tmp_path, "--help")
    assert p.returncode == 0, p.stderr
    for command in ("recommend", "rules", "serve", "memory", "backtest", "plugins"):
        assert command in p.stdout
    assert not [m for m in (*HEAVY, "recommender.core", "recommender.context", "pydantic.main") if m in modules]
    assert all(m in modules for m in GROUPS)


def test_another_groups_command_still_loads_its_group(tmp_path):
    p, modules = imported(tmp_path, "serve", "--help")
    assert p.returncode == 0, p.stderr
    assert "recommender.cli.serve_cmd" in modules and "--port" in p.stdout


def test_import_recommender_gives_the_public_api_on_first_use():
    code = ("import sys, recommender\n"
            "assert 'recommender.core' not in sys.modules and 'pydantic' not in sys.modules\n"
            "from recommender import Recommender, RulePackError, load_pack, hookimpl\n"
            "from recommender.core import Recommender as R\n"
            "assert Recommender is R and recommender.Recommender is R\n"
            "print(sorted(set(recommender.__all__) - set(dir(recommender))))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
    for name in recommender.__all__:
        assert getattr(recommender, name) is not None
    assert recommender.pack_limits.MAX_RULES_PER_PACK > 0  # a submodule, imported on use
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        recommender.not_a_name  # noqa: B018
