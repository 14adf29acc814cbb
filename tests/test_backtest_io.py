"""Reading history: JSON Lines, CSV with a mapping, bad rows with line numbers, mapping errors."""

from __future__ import annotations

import csv
import gzip
import json

import pytest

from recommender.backtest import backtest
from recommender.backtest.io import HistoryInputError, decode, iter_raw, load_mapping, open_source

from test_backtest_helpers import CONTEXTS, run_cli, write_history, write_packs

MAPPING = """\
# context field path: CSV column
customer.id: cust
customer.tenure_years: tenure
customer.visits_last_year: visits
customer.life_events: events
interaction.issue: issue
interaction.cost: price
interaction.channel: channel
interaction.wait_minutes: wait
interaction.delay_days: delay
interaction.repeat_issue: repeat
interaction.sentiment: mood
interaction.attributes.stage: stage
interaction.attributes.add_on_fee: {column: fee, type: number}
at: when
"""
HEADER = ["cust", "tenure", "visits", "events", "issue", "price", "channel", "wait", "delay", "repeat", "mood",
          "stage", "fee", "when"]


def _csv_rows() -> list[list[str]]:
    """The six hand-made contexts as CSV (empty cell = unset)."""
    out = []
    for i, c in enumerate(CONTEXTS):
        cu, it = c.get("customer", {}), c["interaction"]

        def cell(v):
            if v is None:
                return ""
            if isinstance(v, bool):
                return "yes" if v else "no"
            return str(v)

        out.append([cell(cu.get("id")), cell(cu.get("tenure_years")), "", "", it["issue"], cell(it.get("cost")),
                    cell(it.get("channel")), cell(it.get("wait_minutes")), cell(it.get("delay_days")),
                    cell(it.get("repeat_issue")), cell(it.get("sentiment")), "", "",
                    "2025-03-01T09:00:00Z" if i == 0 else ""])
    return out


def _write_csv(path, rows, header=HEADER):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def packs(tmp_path):
    return write_packs(tmp_path)


def test_jsonl_plain_wrapped_blank_lines(tmp_path):
    hist = write_history(tmp_path / "h.jsonl")
    src = open_source(hist)
    raw = list(iter_raw(src))
    assert [line for line, _ in raw] == [1, 2, 3, 5, 6, 7]  # line 4 is blank
    ctx, at = decode(raw[0][1], src)
    assert at == "2025-03-01T09:00:00Z" and ctx["interaction"]["occurred_at"] == at
    assert decode(raw[1][1], src) == (CONTEXTS[1], None)


def test_gzip_jsonl(tmp_path, packs):
    plain = write_history(tmp_path / "h.jsonl")
    gz = tmp_path / "h.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a = backtest(plain, [packs[0]], autoload=False)
    b = backtest(gz, [packs[0]], autoload=False)
    assert a.run == b.run


def test_csv_with_mapping_equals_jsonl(tmp_path, packs):
    (tmp_path / "map.yaml").write_text(MAPPING)
    path = _write_csv(tmp_path / "h.csv", _csv_rows())
    from_csv = backtest(path, [packs[0]], mapping=tmp_path / "map.yaml", autoload=False)
    from_jsonl = backtest(write_history(tmp_path / "h.jsonl"), [packs[0]], autoload=False)
    assert from_csv.rows_skipped == 0
    assert from_csv.run == from_jsonl.run
    assert from_csv.period_start == from_jsonl.period_start


def test_csv_types_are_coerced(tmp_path):
    (tmp_path / "map.yaml").write_text(MAPPING)
    row = ["c9", "4", "12", "new_car|birthday", "flat_tire", "19.5", "phone", "3", "", "TRUE", "-0.4",
           "in_transit", "7", ""]
    path = _write_csv(tmp_path / "h.csv", [row])
    src = open_source(path, tmp_path / "map.yaml")
    ((line, raw),) = list(iter_raw(src))
    ctx, at = decode(raw, src)
    assert line == 2 and at is None
    assert ctx == {"customer": {"id": "c9", "tenure_years": 4.0, "visits_last_year": 12,
                                "life_events": ["new_car", "birthday"]},
                   "interaction": {"issue": "flat_tire", "cost": 19.5, "channel": "phone", "wait_minutes": 3.0,
                                   "repeat_issue": True, "sentiment": -0.4,
                                   "attributes": {"stage": "in_transit", "add_on_fee": 7.0}}}
    assert isinstance(ctx["customer"]["visits_last_year"], int)


def test_csv_without_mapping_uses_field_paths(tmp_path, packs):
    path = tmp_path / "h.csv"
    _write_csv(path, [["c1", "5", "flat_tire", "20"]],
               header=["customer.id", "customer.tenure_years", "interaction.issue", "interaction.cost"])
    rep = backtest(path, [packs[0]], autoload=False)
    assert [g.gesture_id for g in rep.run.gestures] == ["waive"]
    bad = tmp_path / "bad.csv"
    _write_csv(bad, [["1"]], header=["tenure"])
    with pytest.raises(HistoryInputError, match="'tenure'.*--mapping"):
        open_source(bad)


def test_bad_jsonl_rows_are_reported_with_line_numbers(tmp_path, packs):
    extra = [
        '{"customer": ',                                                     # 8: invalid JSON
        '[1, 2]',                                                            # 9: not an object
        json.dumps({"interaction": {"issue": "x", "wait_minutes": "long"}}),  # 10: wrong type
        json.dumps({"customer": {"tenure_years": -1}, "interaction": {"issue": "x"}}),  # 11: out of range
        json.dumps({"context": {"interaction": {"issue": "x"}}, "at": "yesterday"}),   # 12: bad at
        json.dumps({"context": {"interaction": {"issue": "x"}}, "extra": 1}),          # 13: unknown key
        json.dumps({"interaction": {"issue": "ok"}}),                                  # 14: fine
    ]
    hist = write_history(tmp_path / "h.jsonl", extra)
    rep = backtest(hist, [packs[0]], autoload=False)
    assert (rep.rows_read, rep.rows_ok, rep.rows_skipped) == (13, 7, 6)
    bad = {b.line: b.reason for b in rep.bad_rows}
    assert sorted(bad) == [8, 9, 10, 11, 12, 13]
    assert bad[8].startswith("invalid JSON")
    assert "expected a JSON object" in bad[9]
    assert bad[10].startswith("interaction.wait_minutes:")
    assert bad[11].startswith("customer.tenure_years:")
    assert bad[12].startswith("at: invalid date-time")
    assert "extra" in bad[13]
    assert rep.run.rows == 7  # every good row still counted


def test_bad_csv_rows(tmp_path, packs):
    (tmp_path / "map.yaml").write_text(MAPPING)
    rows = _csv_rows()
    rows.insert(1, ["c7", "ten", "", "", "flat_tire", "", "", "", "", "", "", "", "", ""])     # line 3
    rows.insert(3, ["c8", "1", "2.5", "", "flat_tire", "", "", "", "", "", "", "", "", ""])    # line 5
    rows.insert(4, ["c8", "1"])                                                                # line 6
    rows.insert(5, ["c8", "1", "", "", "flat_tire", "", "", "", "", "maybe", "", "", "", ""])  # line 7
    path = _write_csv(tmp_path / "h.csv", rows)
    rep = backtest(path, [packs[0]], mapping=tmp_path / "map.yaml", autoload=False)
    bad = {b.line: b.reason for b in rep.bad_rows}
    assert bad == {
        3: "column 'tenure' (customer.tenure_years): expected a number, got 'ten'",
        5: "column 'visits' (customer.visits_last_year): expected an integer, got '2.5'",
        6: f"expected {len(HEADER)} columns, got 2",
        7: "column 'repeat' (interaction.repeat_issue): expected true/false, got 'maybe'",
    }
    assert rep.rows_ok == 6 and rep.run.cost_cents == 6085


def test_mapping_column_missing_from_header(tmp_path):
    (tmp_path / "map.yaml").write_text(MAPPING)
    path = _write_csv(tmp_path / "h.csv", [], header=[h for h in HEADER if h != "mood"])
    with pytest.raises(HistoryInputError) as exc:
        open_source(path, tmp_path / "map.yaml")
    expected = f"{tmp_path / 'map.yaml'}:12: column 'mood' (for interaction.sentiment) is not in the header"
    assert expected in str(exc.value)


def test_mapping_problems_name_the_line(tmp_path):
    m = tmp_path / "map.yaml"
    m.write_text("customer.tenure_years: tenure\ncustomer.tenure: t\ninteraction.cost: {column: c, type: bool}\n"
                 "interaction.attributes.x: {column: x, type: weird}\n")
    with pytest.raises(HistoryInputError) as exc:
        load_mapping(m)
    text = str(exc.value)
    assert f"{m}:2: 'customer.tenure' is not a context field path" in text
    assert f"{m}:3: interaction.cost is a number field, not bool" in text
    assert f"{m}:4: interaction.attributes.x: unknown type 'weird'" in text
    m.write_text("- just a list\n")
    with pytest.raises(HistoryInputError, match="maps context field paths"):
        load_mapping(m)


def test_cli_input_errors_exit_2(tmp_path):
    (tmp_path / "map.yaml").write_text(MAPPING)
    path = _write_csv(tmp_path / "h.csv", [], header=[h for h in HEADER if h != "price"])
    p = run_cli("backtest", str(path), "--mapping", str(tmp_path / "map.yaml"))
    assert p.returncode == 2
    assert "column 'price'" in p.stderr and "map.yaml:7" in p.stderr and "Traceback" not in p.stderr
    assert p.stdout == ""  # nothing ran

    p = run_cli("backtest", str(tmp_path / "nope.jsonl"))
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("backtest", str(tmp_path))
    assert p.returncode == 2 and "is a directory" in p.stderr
    unreadable = tmp_path / "bin.jsonl"
    unreadable.write_bytes(b"\xff\xfe\x00garbage")
    p = run_cli("backtest", str(unreadable))
    assert p.returncode == 2 and "cannot read history file" in p.stderr
    p = run_cli("backtest", str(write_history(tmp_path / "h.jsonl")), "--mapping", str(tmp_path / "map.yaml"))
    assert p.returncode == 2 and "CSV history files only" in p.stderr
    p = run_cli("backtest")
    assert p.returncode == 2 and "missing HISTORY" in p.stderr
