"""Issue 16, items 4, 5 and 8: a newcomer's first hour without friction.

4. Every optional feature used without its extra prints one line naming the extra and exits 2
   (no traceback); a ``client`` extra brings only what ``recommender.client`` needs.
5. A store URL naming a missing SQLite file is an error for commands that read; only writes
   and ``db upgrade`` create the file.
8. ``--version``, help texts shown as written, shell completion, "file is empty" for every
   empty input, ``ServiceError`` for every client failure, one idempotency rule for outcomes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = {"customer": {"id": "c-1", "tenure_years": 6}, "interaction": {"issue": "flat_tire", "cost": 25}}


def run(*args: str, blocked: tuple[str, ...] = (), cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``recommender ARGS`` in a fresh interpreter, with the ``blocked`` modules not importable
    (as if their extra were not installed)."""
    code = (f"import sys\nfor m in {list(blocked)!r}:\n    sys.modules[m] = None\n"
            f"sys.argv = ['recommender', *{list(args)!r}]\nfrom recommender.cli import main\nmain()\n")
    full = {k: v for k, v in os.environ.items() if not k.startswith("RECOMMENDER_")}
    full.update({"RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD": "1", "COLUMNS": "200", **(env or {})})
    # not from the checkout: ``python -c`` puts the working folder first on sys.path, which
    # would shadow an installed (compiled) build with the checkout's sources
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=cwd or tempfile.gettempdir(), env=full)


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    """``recommender ARGS`` in this process (faster; no ``main()`` around it)."""
    from typer.testing import CliRunner

    from recommender.cli import app
    from recommender.cli.app import load_command_groups

    load_command_groups()
    return CliRunner().invoke(app, list(args), env={"RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD": "1", **(env or {})})


def one_line_hint(p: subprocess.CompletedProcess[str], extra: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert f"'{extra}' extra" in lines[0] and f"pip install 'service-recommender[{extra}]'" in lines[0]


# -- 4. missing extras -------------------------------------------------------------------


def test_serve_and_openapi_without_the_server_extra(tmp_path: Path) -> None:
    one_line_hint(run("serve", "--no-auth", blocked=("fastapi", "uvicorn")), "server")
    one_line_hint(run("openapi", "--output", str(tmp_path / "o.json"), blocked=("fastapi",)), "server")


def test_a_postgres_url_without_the_postgres_extra() -> None:
    one_line_hint(run("report", "--url", "postgresql://app@127.0.0.1:1/x", blocked=("psycopg",)), "postgres")


def test_a_backtest_on_dask_without_the_dask_extra(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    history.write_text(json.dumps({"context": CONTEXT}) + "\n")
    one_line_hint(run("backtest", str(history), "--workers", "1", blocked=("distributed", "dask")), "dask")


def test_the_client_without_httpx_names_the_client_extra() -> None:
    code = ("import sys\nsys.modules['httpx'] = None\n"
            "try:\n    import recommender.client\nexcept ModuleNotFoundError as exc:\n"
            "    print(exc.name, '|', exc)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("httpx | recommender.client needs the 'client' extra"), p.stdout + p.stderr
    assert "pip install 'service-recommender[client]'" in p.stdout


def test_the_bench_peers_without_the_bench_extra() -> None:
    code = ("import sys, importlib.util as u\nreal = u.find_spec\n"
            "u.find_spec = lambda n, *a: None if n == 'zen' else real(n, *a)\n"
            "from bench.run import main\nraise SystemExit(main(['--quick', '--out', '/dev/null']))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    one_line_hint(p, "bench")
    assert "--skip zen" in p.stderr


def test_the_client_extra_brings_only_httpx() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [d.split(">")[0] for d in extras["client"]] == ["httpx"]
    assert any(d.startswith("httpx") for d in extras["server"])  # the server's tests use the client


# -- 5. a missing SQLite file ---------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["report"], ["db", "status"], ["customer", "show", "c-1"], ["decision", "show", "d-1"], ["keys", "list"],
    ["db", "prune", "--before", "30d"], ["outcome", "d-1", "g", "accepted"], ["keys", "revoke", "abc"],
    ["backtest", "--decisions"],
])
def test_reading_a_missing_sqlite_file_is_an_error_and_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "nope.db"
    p = cli(*args, "--url", f"sqlite:///{db}")
    assert p.exit_code == 2, p.output
    assert "no database at" in p.output and "nope.db" in p.output
    assert not db.exists()


def test_writes_and_db_upgrade_create_the_file(tmp_path: Path) -> None:
    for args, name in ((["db", "upgrade"], "a.db"), (["customer", "set", "c-1", "--note", "hi"], "b.db"),
                       (["keys", "create", "--tenant", "acme", "--scope", "recommend"], "c.db")):
        p = cli(*args, "--url", f"sqlite:///{tmp_path / name}")
        assert p.exit_code == 0, (args, p.output)
        assert (tmp_path / name).exists()
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps(CONTEXT))
    p = cli("recommend", str(ctx), "--url", f"sqlite:///{tmp_path / 'd.db'}")
    assert p.exit_code == 0 and (tmp_path / "d.db").exists()
    assert cli("report", "--url", f"sqlite:///{tmp_path / 'd.db'}").exit_code == 0


# -- 8. the basics -----------------------------------------------------------------------


def test_version_names_the_build() -> None:
    import recommender

    p = run("--version")
    assert p.returncode == 0
    line = p.stdout.strip()
    assert line.startswith(f"recommender {recommender.__version__} (")
    assert ("compiled build: " if recommender.compiled_modules() else "pure Python build") in line


def test_help_lists_every_command_and_shows_texts_as_written() -> None:
    from typer.main import get_command

    from recommender.cli import app
    from recommender.cli.app import load_command_groups

    load_command_groups()
    group = get_command(app)
    p = run("--help")
    assert p.returncode == 0
    for name in group.commands:  # type: ignore[attr-defined]
        assert f" {name} " in p.stdout, name
    assert "[[api_keys]]" in p.stdout and "--install-completion" in p.stdout and "--version" in p.stdout
    key = run("config-key", "--help")
    assert "[[api_keys]]" in key.stdout


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for name, cmd in group.commands.items():
        out.append(((*prefix, name), cmd))
        if hasattr(cmd, "commands"):
            out += _commands(cmd, (*prefix, name))
    return out


def test_every_commands_help_shows_its_first_line_verbatim() -> None:
    from typer.main import get_command
    from typer.testing import CliRunner

    from recommender.cli import app
    from recommender.cli.app import load_command_groups

    load_command_groups()
    runner = CliRunner()
    for path, cmd in _commands(get_command(app)):
        first = " ".join((cmd.help or "").replace("`", "").strip().split("\n\n")[0].split())
        if not first or not set(first) & set("[]*_<>#"):  # only texts markup could mangle
            continue
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"}).output
        flat = " ".join(shown.replace("│", " ").split())
        assert first in flat, (path, first)


def test_shell_completion_is_available_and_documented() -> None:
    p = run("--show-completion", env={"SHELL": "/bin/bash"})
    assert p.returncode == 0 and "complete" in p.stdout
    assert "--install-completion" in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.parametrize("case", ["context", "stdin", "profiles", "policy", "mapping", "history", "csv", "config",
                                  "pack", "scenarios"])
def test_every_empty_input_says_the_file_is_empty(tmp_path: Path, case: str) -> None:
    empty = tmp_path / ("empty.csv" if case == "csv" else "empty.jsonl" if case == "history" else
                        "empty.toml" if case == "config" else "empty.yaml")
    empty.write_text("  \n")
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps(CONTEXT))
    db = tmp_path / "m.db"
    csv = tmp_path / "h.csv"
    csv.write_text("interaction.issue\nflat_tire\n")
    args = {
        "context": ["recommend", str(empty)],
        "stdin": ["recommend", "-"],
        "profiles": ["recommend", str(ctx), "--profiles", str(empty)],
        "policy": ["recommend", str(ctx), "--url", f"sqlite:///{db}"],
        "mapping": ["backtest", str(csv), "--mapping", str(empty)],
        "history": ["backtest", str(empty)],
        "csv": ["backtest", str(empty)],
        "config": ["serve", "--config", str(empty)],
        "pack": ["rules", "check", str(empty)],
        "scenarios": ["rules", "test", str(empty)],
    }[case]
    if case == "stdin":
        p = subprocess.run([sys.executable, "-m", "recommender.cli", *args], input="", capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 2 and "is empty" in p.stderr and "Traceback" not in p.stderr, p.stderr
        return
    got = cli(*args, env={"RECOMMENDER_POLICY": str(empty)} if case == "policy" else None)
    assert got.exit_code in (1, 2) and got.exception is None or isinstance(got.exception, SystemExit), got.output
    assert "is empty" in got.output, got.output


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_client_failure_is_a_service_error() -> None:
    import httpx

    from recommender.client import RecommenderClient, ServiceError

    with pytest.raises(ServiceError) as refused:
        RecommenderClient(f"http://127.0.0.1:{_closed_port()}", timeout=2).health()
    assert refused.value.status == 0 and refused.value.code == "unreachable"

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def not_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>a proxy's page</html>")

    def wrong_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"hello": "world"})

    cases = ((slow, 0, "timeout", ("health", "recommend", "gestures")),
             (not_json, 200, "bad_response", ("health", "recommend", "gestures")),
             (wrong_json, 200, "bad_response", ("recommend",)))
    for handler, status, code, calls in cases:
        c = RecommenderClient(client=httpx.Client(transport=httpx.MockTransport(handler), base_url="http://svc"))
        for name in calls:
            with pytest.raises(ServiceError) as failed:
                getattr(c, name)(*([CONTEXT] if name == "recommend" else []))
            assert (failed.value.status, failed.value.code) == (status, code), (handler.__name__, name)


def test_an_outcome_without_a_key_is_recorded_once_in_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps(CONTEXT))
    p = cli("recommend", str(ctx), "--url", url, "--json")
    assert p.exit_code == 0, p.output
    result = json.loads(p.stdout)
    gesture = result["recommendations"][0]["gesture_id"]
    first = cli("outcome", result["decision_id"], gesture, "accepted", "--url", url, "--json")
    again = cli("outcome", result["decision_id"], gesture, "accepted", "--url", url, "--json")
    assert first.exit_code == again.exit_code == 0, again.output
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert (a["replayed"], b["replayed"]) == (False, True) and a["id"] == b["id"]
    assert a["idempotency_key"] == f"auto:{result['decision_id']}:{gesture}:accepted"


def test_an_outcome_without_a_key_is_recorded_once_over_http(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recommender.client import RecommenderClient
    from recommender.service import Settings, create_app

    app = create_app(Settings(store_url=f"sqlite:///{tmp_path / 'm.db'}", auth="none", autoload_plugins=False))
    with TestClient(app) as http:
        c = RecommenderClient(client=http)
        result = c.recommend(CONTEXT)
        gesture = result.recommendations[0].gesture_id
        first = http.post(f"/v1/decisions/{result.decision_id}/outcomes", json={"gesture_id": gesture,
                                                                                 "outcome": "accepted"})
        again = c.record_outcome(result.decision_id, gesture, "accepted")  # no key from the client either
    assert first.status_code == 201 and first.json()["replayed"] is False
    assert again["replayed"] is True and again["id"] == first.json()["id"]
