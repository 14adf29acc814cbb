"""Backtesting rule sets against past interactions (``recommender backtest``).

    from recommender.backtest import backtest

    report = backtest("history.jsonl", ["my_rules/"], compare=["new_rules/"])
    print(report.run.coverage.coverage, report.compare.cost_delta)

See ``docs/backtest.md``. Dask (``workers=`` / ``scheduler=``) is imported only when used.
"""

from __future__ import annotations

from .io import HistoryInputError, load_mapping, open_source
from .report import (
    NEGATIVE_DEFINITION,
    BacktestReport,
    CompareReport,
    ReplayReport,
    RunReport,
    negative_reasons,
    tenure_band,
)
from .run import BacktestError, RuleSet, backtest, replay_decisions, run_history

__all__ = [
    "backtest",
    "run_history",
    "replay_decisions",
    "RuleSet",
    "BacktestReport",
    "RunReport",
    "CompareReport",
    "ReplayReport",
    "HistoryInputError",
    "BacktestError",
    "load_mapping",
    "open_source",
    "negative_reasons",
    "tenure_band",
    "NEGATIVE_DEFINITION",
]
