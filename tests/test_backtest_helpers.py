"""Shared data for the backtest tests (no tests here): two small rule sets and a history
whose answers are worked out by hand below."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

PACK_A = """\
pack: bt
version: "1"
gestures:
  - {id: apology, title: Apologise, category: service_recovery, tier: recover, cost: 0, script: Sorry.}
  - {id: credit, title: Credit, category: service_recovery, tier: recover, cost: 10.10, script: A credit.}
  - {id: waive, title: Waive the fee, category: fee_waiver, tier: meet, cost: interaction.cost, script: On us.}
  - {id: tip, title: A tip, category: information, tier: meet, cost: 0.1, script: A tip.}
rules:
  - {id: r-wait, when: interaction.wait_minutes ge 20, then: apology, because: A long wait.}
  - {id: r-repeat, when: interaction.repeat_issue eq true, then: [apology, credit], because: Repeat.}
  - {id: r-loyal, when: [customer.tenure_years ge 3, interaction.cost le 40], then: waive, because: Loyal.}
  - {id: r-oil, when: interaction.issue eq oil_change, then: tip, because: Teach.}
"""

#: B: the wait threshold rises to 30, a delay earns a credit, an upset customer gets a note,
#: and the oil tip is gone.
PACK_B = """\
pack: bt
version: "2"
gestures:
  - {id: apology, title: Apologise, category: service_recovery, tier: recover, cost: 0, script: Sorry.}
  - {id: credit, title: Credit, category: service_recovery, tier: recover, cost: 10.10, script: A credit.}
  - {id: waive, title: Waive the fee, category: fee_waiver, tier: meet, cost: interaction.cost, script: On us.}
  - {id: tip, title: A tip, category: information, tier: meet, cost: 0.1, script: A tip.}
  - {id: sorry_note, title: A note, category: personal_touch, tier: recover, cost: 1.25, script: A note.}
rules:
  - {id: r-wait, when: interaction.wait_minutes ge 30, then: apology, because: A long wait.}
  - {id: r-repeat, when: interaction.repeat_issue eq true, then: [apology, credit], because: Repeat.}
  - {id: r-loyal, when: [customer.tenure_years ge 3, interaction.cost le 40], then: waive, because: Loyal.}
  - {id: r-delay, when: interaction.delay_days ge 1, then: credit, because: Late.}
  - {id: r-sad, when: interaction.sentiment le -0.3, then: sorry_note, because: Upset.}
"""

#: The hand-made history. Under A:
#:  1 waive 20.00                      | 3-10 pos    flat_tire      not negative
#:  2 apology                           | <1   phone  flat_tire      long wait, covered
#:  3 apology credit waive 30.55 tip    | 10+  phone  oil_change     repeat, covered
#:  4 tip                               | unknown web oil_change     sentiment, NOT covered
#:  5 (nothing)                         | 1-3  pos    late_delivery  delay, NOT covered
#:  6 (nothing: cost 50 > 40)           | 3-10 pos    flat_tire      not negative
#: Under B: 1 waive; 2 nothing; 3 apology credit waive; 4 sorry_note; 5 credit; 6 nothing.
CONTEXTS: list[dict[str, Any]] = [
    {"customer": {"id": "c1", "tenure_years": 5}, "interaction": {"issue": "flat_tire", "cost": 20, "channel": "pos"}},
    {"customer": {"id": "c2", "tenure_years": 0.5},
     "interaction": {"issue": "flat_tire", "cost": 20, "wait_minutes": 25, "channel": "phone"}},
    {"customer": {"id": "c3", "tenure_years": 12},
     "interaction": {"issue": "oil_change", "cost": 30.55, "repeat_issue": True, "channel": "phone"}},
    {"interaction": {"issue": "oil_change", "channel": "web", "sentiment": -0.5}},
    {"customer": {"id": "c5", "tenure_years": 2}, "interaction": {"issue": "late_delivery", "delay_days": 2}},
    {"customer": {"id": "c6", "tenure_years": 3}, "interaction": {"issue": "flat_tire", "cost": 50}},
]


def write_packs(tmp: Path) -> tuple[Path, Path]:
    a, b = tmp / "rules_a", tmp / "rules_b"
    a.mkdir(exist_ok=True)
    b.mkdir(exist_ok=True)
    (a / "bt.yaml").write_text(PACK_A)
    (b / "bt.yaml").write_text(PACK_B)
    return a, b


def write_history(path: Path, extra_lines: list[str] | None = None) -> Path:
    """The six contexts; the first is wrapped with an ``at``; a blank line in the middle."""
    lines = [json.dumps({"context": CONTEXTS[0], "at": "2025-03-01T09:00:00Z"})]
    lines += [json.dumps(c) for c in CONTEXTS[1:3]]
    lines.append("")
    lines += [json.dumps(c) for c in CONTEXTS[3:]]
    lines += extra_lines or []
    path.write_text("\n".join(lines) + "\n")
    return path


def run_subprocess(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real ``recommender`` entry point in a child process."""
    cmd = [sys.executable, "-c", "from recommender.cli import main; main()", *args]
    base = {"RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "COLUMNS": "200", "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})})


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Ran:
    """``recommender ARGS`` in this process (Typer's runner): the backtest command group only."""
    import typer
    from typer.testing import CliRunner

    from recommender.cli import backtest_cmd

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root (keeps 'backtest' a sub-command)."""

    backtest_cmd.register(app)
    result = CliRunner().invoke(app, list(args), catch_exceptions=False,
                                env={"RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD": "1", "COLUMNS": "200", **(env or {})})
    return Ran(result.exit_code, result.stdout, result.stderr)
