"""A local Dask cluster of two worker processes gives exactly the in-process report."""

from __future__ import annotations

import sys

import pytest

from recommender.backtest import backtest

from test_backtest_helpers import ROOT, write_packs

pytest.importorskip("distributed", reason="Dask (distributed) is needed for --workers / --dask")
sys.path.append(str(ROOT))  # for bench/; an installed recommender comes first

from bench.gen_history import write_jsonl  # noqa: E402

EXCLUDE = {"timing"}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("btdask")
    a, b = write_packs(tmp)
    path = tmp / "h.jsonl"
    write_jsonl(path, 2000, seed=11, bad_rate=0.01)
    return path, a, b


def test_two_workers_equal_in_process(history):
    path, a, b = history
    local = backtest(path, [a], compare=[b], autoload=False)
    dask = backtest(path, [a], compare=[b], autoload=False, workers=2, chunk_size=250)
    assert dask.timing.engine.startswith("dask local cluster") and dask.timing.workers == 2
    assert local.timing.engine == "in-process"
    assert local.rows_read == dask.rows_read == 2000
    assert 0 < local.rows_skipped < 100 and local.run.fires > 1000
    assert dask.model_dump(exclude=EXCLUDE) == local.model_dump(exclude=EXCLUDE)
    assert dask.run.cost_cents == local.run.cost_cents
    assert dask.compare.rows_changed == local.compare.rows_changed > 0


def test_cli_workers_and_unreachable_scheduler(history):
    from test_backtest_helpers import run_cli

    path, a, _ = history
    p = run_cli("backtest", str(path), "--rules", str(a), "--dask", "tcp://127.0.0.1:1", "--dask-timeout", "1",
                "--no-progress", timeout=60)
    assert p.returncode == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in p.stderr
    assert "Traceback" not in p.stderr
    p = run_cli("backtest", str(path), "--workers", "2", "--dask", "tcp://127.0.0.1:1")
    assert p.returncode == 2 and "not both" in p.stderr
