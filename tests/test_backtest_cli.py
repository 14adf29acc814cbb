"""``recommender backtest`` end to end: JSON, tables, bad rows on stderr, --compare, --html."""

from __future__ import annotations

import json
import re

import pytest

from recommender.backtest import backtest
from recommender.backtest.html import CHART_TITLES, render_html

from test_backtest_helpers import run_cli, run_subprocess, write_history, write_packs


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("btcli")
    a, b = write_packs(tmp)
    hist = write_history(tmp / "h.jsonl", ['{"customer": oops', '{"interaction": {"issue": "x", "cost": -1}}'])
    return tmp, a, b, hist


def test_json_report_and_bad_rows_on_stderr(files):
    _, a, _, hist = files
    p = run_cli("backtest", str(hist), "--rules", str(a), "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["rows_read"] == 8 and rep["rows_skipped"] == 2
    assert [b["line"] for b in rep["bad_rows"]] == [8, 9]
    assert rep["run"]["cost_total"] == 60.85 and rep["run"]["coverage"]["coverage"] == 0.5
    assert f"{hist}:8: invalid JSON" in p.stderr
    assert f"{hist}:9: interaction.cost: Input should be greater than or equal to 0" in p.stderr
    assert "skipped 2 bad row(s) of 8 read" in p.stderr


def test_entry_point(files):
    """The installed ``recommender`` command has the backtest command (a real child process)."""
    _, a, _, hist = files
    p = run_subprocess("backtest", str(hist), "--rules", str(a), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["run"]["cost_cents"] == 6085 and "skipped 2 bad row(s)" in p.stderr


def test_tables(files):
    _, a, _, hist = files
    p = run_cli("backtest", str(hist), "--rules", str(a))
    assert p.returncode == 0, p.stderr
    for text in ("Gestures", "Tiers", "Rules", "Segment: tenure", "Segment: channel", "Segment: issue",
                 "2 of 4 negative experiences got a recover gesture (50.0%)", "cost 60.85",
                 "skipped 2 bad row(s) of 8"):
        assert text in p.stdout, text


def test_compare_cli(files):
    _, a, b, hist = files
    p = run_cli("backtest", str(hist), "--rules", str(a), "--compare", str(b), "--json")
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)["compare"]
    assert (c["rows_changed"], c["cost_delta"], c["coverage_delta"]) == (4, 11.15, 0.25)
    assert c["gestures_gained"] == ["sorry_note"] and c["gestures_lost"] == ["tip"]
    p = run_cli("backtest", str(hist), "--rules", str(a), "--compare", str(b))
    assert p.returncode == 0
    assert "rows changed: 4 of 6 (66.7%)" in p.stdout
    assert "gestures gained (only B recommends): sorry_note" in p.stdout
    assert "Δ +11.15" in p.stdout and "Δ +25.0 pts" in p.stdout


def test_invalid_rule_pack_exits_2(files, tmp_path):
    _, _, _, hist = files
    bad = tmp_path / "bad.yaml"
    bad.write_text("pack: x\nrules:\n  - {id: r, when: nope.field eq 1, then: g, because: b}\n")
    p = run_cli("backtest", str(hist), "--rules", str(bad))
    assert p.returncode == 2 and "bad.yaml" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("backtest", str(hist), "--rules", str(tmp_path / "missing.yaml"))
    assert p.returncode == 2 and "does not exist" in p.stderr


def test_no_usable_rows_exits_2(tmp_path):
    h = tmp_path / "h.jsonl"
    h.write_text("{bad\n[1]\n")
    p = run_cli("backtest", str(h))
    assert p.returncode == 2 and "none of its 2 rows is usable" in p.stderr and f"{h}:1:" in p.stderr
    h.write_text("\n\n")
    p = run_cli("backtest", str(h))
    assert p.returncode == 2 and "holds no rows" in p.stderr


def _external_refs(html: str) -> list[str]:
    """Anything that would be fetched: src/href/url()/@import pointing off the file, and scripts."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]+""", html, re.I)
    refs += re.findall(r"""url\(\s*["']?\s*(?:https?:)?//[^)]+\)""", html, re.I)
    refs += re.findall(r"@import", html, re.I)
    refs += re.findall(r"<(?:script|link|img|iframe|object|embed)\b", html, re.I)
    return refs


def test_html_is_self_contained(files):
    tmp, a, b, hist = files
    out = tmp / "report.html"
    p = run_cli("backtest", str(hist), "--rules", str(a), "--compare", str(b), "--html", str(out), "--json")
    assert p.returncode == 0, p.stderr
    html = out.read_text()
    assert _external_refs(html) == []
    assert "http://" not in html and "https://" not in html
    for key in ("cost", "coverage", "ab_fires", "ab_cost", "ab_coverage"):
        assert CHART_TITLES[key] in html, key
    for dim in ("tenure (years)", "channel", "issue"):
        assert CHART_TITLES["segment"].format(dim=dim) in html
    assert html.count("<svg") >= 10 and "invalid JSON" in html  # charts, and the skipped rows


def test_html_escapes_data(tmp_path):
    a, _ = write_packs(tmp_path)
    h = tmp_path / "<i>h.jsonl"
    h.write_text(json.dumps({"interaction": {"issue": "oil_change"}}) + "\n<script>alert(1)</script>\n")
    html = render_html(backtest(h, [a], autoload=False))
    assert "<i>h.jsonl" not in html and "&lt;i&gt;h.jsonl" in html
    assert "<script" not in html and _external_refs(html) == []
