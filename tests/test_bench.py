"""``bench/run.py`` end to end on a tiny workload: every engine verified, ratios and the
recommend_many batch recorded, bad flags refused. Numbers are not asserted (benchmarks, not
timed tests); that the script still runs and checks its engines is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for bench/; an installed recommender comes first

from bench import run  # noqa: E402


def test_quick_run_verifies_every_engine_and_measures_the_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for peer in ("zen", "rule_engine"):  # the bench extra; CI's full install always has it
        pytest.importorskip(peer)
    out = tmp_path / "r.json"
    assert run.main(["--ks", "10", "--quick", "--rounds", "1", "--budget", "0.01",
                     "--batch-contexts", "20", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    info = data["ks"]["10"]
    engines = info["engines"]
    assert {"floor (plain Python)", "ours: recommend()", "ours: match step", "durable-rules (Host)",
            "zen-engine", "rule-engine"} <= set(engines)
    assert engines["floor (plain Python)"]["median_vs_floor"] == 1.0
    assert all(r["median_us"] > 0 and r["samples"] > 0 for r in engines.values())
    # the batch is its own backtest-sized list, not the timing contexts
    assert info["batch"]["unique"]["contexts"] == 20
    assert info["batch"]["with_repeats"]["contexts"] == 30
    assert all(x["speedup"] > 0 for x in info["batch"].values())
    printed = capsys.readouterr().out
    assert "recommend_many vs loop (unique, 20 contexts)" in printed
    table = run.markdown(data)
    assert table.splitlines()[-1].startswith("| 10 | ") and "| 20 | x" in table.splitlines()[-1]


def test_bad_batch_size_is_a_usage_error_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run.main(["--ks", "10", "--batch-contexts", "0"])
    assert exc.value.code == 2
    assert "--batch-contexts: must be at least 1" in capsys.readouterr().err


def test_markdown_of_a_missing_or_foreign_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "other.json"
    foreign.write_text('{"not": "ours"}')
    for path in (tmp_path / "missing.json", foreign):
        with pytest.raises(SystemExit) as exc:
            run.main(["--markdown", str(path)])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"--markdown {path}: not a results file of this script" in err
        assert "Traceback" not in err
