"""``bench/targets.py`` (issue 17's targets) on tiny workloads: every mode runs, measures
against its baseline in the same run and reports ratios. No timing is asserted: that is the
benchmark's job, not the test suite's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for bench/; an installed recommender comes first

from bench import targets  # noqa: E402


def test_plugins_mode_compares_every_way_of_running_hooks_with_no_plugins():
    out = targets.bench_plugins(rounds=2, per_round=6)
    assert set(out["sets"]) == {"every example", "the plugins' verticals"}
    for s in out["sets"].values():
        rows = s["rows"]
        assert list(rows) == ["no plugins", "three plugins", "three plugins, hooks on a worker",
                              "three plugins, plugin_timeout=0", "the plugins' packs only, no hooks",
                              "their packs, enriched contexts, no hooks", "hooks that do nothing, enriched contexts"]
        assert rows["no plugins"]["p50_ratio"] == 1.0 and rows["no plugins"]["cpu_ratio"] == 1.0
        assert all(r["p50_us"] > 0 and r["cpu_us"] > 0 for r in rows.values())
    assert out["target"]["every_example"] == out["sets"]["every example"]["rows"]["three plugins"]["p50_ratio"]


def test_startup_mode_times_whole_processes_cold_and_warm():
    out = targets.bench_startup(repeat=1)
    rows = out["rows"]
    assert rows["python -c 'import pydantic'"]["process_s"] > 0
    cold, warm = rows["Recommender(), cold cache"], rows["Recommender(), warm cache"]
    assert cold["cache_misses"] > 0 and cold["cache_hits"] >= 0  # an empty folder: everything built
    assert warm["cache_hits"] > 0  # read back: parsed packs and compiled rulesets
    assert rows["Recommender(), cache off"]["cache_hits"] == 0
    assert all(r["samples"] == 1 for r in rows.values())
    assert set(out["target"]) >= {"with_verticals_cold_over_warm", "cli_warm_over_import_pydantic", "help_over_import_pydantic",
                                  "cli_json_warm_over_import_pydantic", "library_warm_over_import_pydantic"}
    assert rows["recommender recommend --json, warm cache"]["process_s"] > 0
    assert rows["warm recommend, the library alone (no CLI)"]["process_s"] > 0
    assert rows["recommender --help"]["process_s"] > 0


def test_scale_mode_loads_cold_warm_and_from_dicts_and_reports_a_refusal_past_the_caps():
    out = targets.bench_scale([30, 90], per_pack=40, book_cap=60)
    small = [r for r in out["rows"] if r["rules"] == 30]
    assert [(r["load"], r["caps_raised"], r["ok"]) for r in small] == [
        ("YAML, cold cache", False, True), ("YAML, warm cache", False, True), ("in-memory dicts", False, True)]
    assert all(r["rules"] == 30 and r["rss_mib_per_1000_rules"] == r["rss_mib"] / 30 * 1000 for r in small)
    big = [r for r in out["rows"] if r["rules"] == 90]
    assert big[0]["ok"] is False and "more than 60 rules in force for one business" in big[0]["refused"]
    assert [(r["load"], r["caps_raised"], r["ok"]) for r in big[1:]] == [
        ("YAML, cold cache", True, True), ("YAML, warm cache", True, True), ("in-memory dicts", True, True)]
    assert all(r["packs"] == 3 for r in big)
    warm = [r for r in out["rows"] if r["load"] == "YAML, warm cache"]
    assert all(r["cache_hits"] > 0 for r in warm)  # read back, not parsed again


def test_generated_yaml_packs_load_as_their_dicts():
    from recommender import Recommender

    packs = targets.scale_packs(50, per_pack=20)
    assert [len(p["rules"]) for p in packs] == [20, 20, 10]
    assert len({r["id"] for p in packs for r in p["rules"]}) == 50  # ids distinct across packs
    from_dicts = Recommender([], packs=packs, autoload=False).rulebook
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for p in packs:
            (Path(d) / f"{p['pack']}.yaml").write_text(targets.pack_yaml(p))
        from_yaml = Recommender([d], autoload=False).rulebook
    dump = lambda book: [(r.id, r.when, r.then, r.priority, r.because) for r in book.rules]  # noqa: E731
    assert dump(from_yaml) == dump(from_dicts)
    assert [g.model_dump() for g in from_yaml.gestures.values()] == [g.model_dump() for g in from_dicts.gestures.values()]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.targets", *args], capture_output=True, text=True,
                          timeout=300, cwd=str(ROOT))


def test_the_command_prints_the_report_and_its_json(tmp_path):
    out = tmp_path / "t.json"
    done = _cli("plugins", "--rounds", "1", "--calls", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "target (<= 1.25x on every example)" in done.stdout and "load average at start" in done.stdout
    report = json.loads(out.read_text())
    assert set(report) == {"meta", "plugins"} and report["meta"]["build"]


@pytest.mark.parametrize("args, message", [
    (["--repeat", "0"], "--repeat: must be at least 1"),
    (["nonsense"], "unknown target 'nonsense'"),
    (["scale", "--sizes", "ten"], "--sizes: expected rule counts"),
])
def test_bad_arguments_are_usage_errors(args, message):
    done = _cli(*args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
