"""The backtest as one self-contained HTML file: charts are inline SVG drawn here.

No scripts, no fonts, no images, no external URLs: the file reads the same offline, in a
mail attachment or on an air-gapped machine. Charts: cost by gesture, fires by segment
(tenure, channel, issue), coverage of negative experiences and, when comparing, A vs B.
"""

from __future__ import annotations

from html import escape
from typing import Sequence

from .report import BacktestReport, ReplayReport, RunReport

__all__ = ["render_html", "render_replay_html", "bar_chart", "CHART_TITLES"]

A_COLOR = "#3b6ea8"
B_COLOR = "#e07b39"
CHART_TITLES = {
    "cost": "Cost by gesture",
    "fires_gesture": "Fires by gesture",
    "segment": "Fires by segment: {dim}",
    "coverage": "Coverage of negative experiences",
    "ab_fires": "A vs B: fires by gesture",
    "ab_cost": "A vs B: cost by gesture",
    "ab_coverage": "A vs B: coverage",
}
_DIM_TITLES = {"tenure": "tenure (years)", "channel": "channel", "issue": "issue"}
_STYLE = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1d2330;margin:24px auto;max-width:1100px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
.muted{color:#667085}.kpis{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.kpi{border:1px solid #dde2ea;border-radius:6px;padding:8px 12px;min-width:140px}.kpi b{display:block;font-size:18px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}th,td{border-bottom:1px solid #edf0f4;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f5f7fa}.chart{margin:8px 0 20px}
.pos{color:#1a7f37}.neg{color:#b42318}.bad{font-family:monospace;font-size:12px}
svg text{font:12px -apple-system,Segoe UI,Helvetica,Arial,sans-serif;fill:#1d2330}
"""


def _fmt_money(v: float) -> str:
    return f"{v:,.2f}"


def _fmt_int(v: float) -> str:
    return f"{int(v):,}"


def _fmt_pct(v: float) -> str:
    return f"{v * 100:.1f}%"


def _pct(v: float | None) -> str:
    return "–" if v is None else _fmt_pct(v)


def bar_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]],
              fmt: str = "int", max_value: float | None = None) -> str:
    """A horizontal bar chart as an inline ``<svg>``: one group of bars per label, one bar per series."""
    fmt_fn = {"int": _fmt_int, "money": _fmt_money, "pct": _fmt_pct}[fmt]
    n_series = max(1, len(series))
    bar_h, gap = 14, 8
    group_h = bar_h * n_series + gap
    label_w = min(300, 12 + 7 * max((len(lbl) for lbl in labels), default=4))
    plot_w, value_w = 520, 90
    legend_h = 22 if n_series > 1 else 0
    width = label_w + plot_w + value_w
    height = 30 + legend_h + group_h * max(1, len(labels)) + 6
    top = max((v for _, values, _ in series for v in values), default=0.0)
    scale_max = max_value if max_value is not None else (top or 1.0)
    out = [f'<svg role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>",
           f'<text x="0" y="16" style="font-weight:600;font-size:14px">{escape(title)}</text>']
    if n_series > 1:
        x = label_w
        for name, _, color in series:
            out.append(f'<rect x="{x}" y="26" width="12" height="12" fill="{color}"/>')
            out.append(f'<text x="{x + 16}" y="36">{escape(name)}</text>')
            x += 24 + 7 * len(name)
    if not labels:
        out.append(f'<text x="{label_w}" y="{40 + legend_h}" class="muted">no data</text>')
    y0 = 30 + legend_h
    for i, label in enumerate(labels):
        gy = y0 + i * group_h
        out.append(f'<text x="{label_w - 6}" y="{gy + (bar_h * n_series) / 2 + 4:.1f}" text-anchor="end">'
                   f"{escape(label)}</text>")
        for j, (_, values, color) in enumerate(series):
            v = values[i] if i < len(values) else 0.0
            w = 0.0 if scale_max <= 0 else max(0.0, min(1.0, v / scale_max)) * plot_w
            by = gy + j * bar_h
            out.append(f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="{bar_h - 2}" fill="{color}">'
                       f"<title>{escape(label)}: {escape(fmt_fn(v))}</title></rect>")
            out.append(f'<text x="{label_w + w + 4:.1f}" y="{by + bar_h - 4}">{escape(fmt_fn(v))}</text>')
    out.append("</svg>")
    slug = "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")
    return f'<div class="chart" id="{escape(slug)}">' + "".join(out) + "</div>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kpis(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><span class="muted">{escape(k)}</span><b>{escape(v)}</b></div>' for k, v in items) + "</div>"


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>\n")


def _signed(v: float, money: bool = False) -> str:
    text = f"{v:+,.2f}" if money else f"{int(v):+,}"
    cls = "pos" if v > 0 else "neg" if v < 0 else ""
    return f'<span class="{cls}">{escape(text)}</span>'


def _run_section(run: RunReport, top: int) -> str:
    parts = [_kpis([("rows", f"{run.rows:,}"), ("rows with a gesture", f"{run.rows_with_gesture:,}"),
                    ("gestures recommended", f"{run.fires:,}"), ("total cost", _fmt_money(run.cost_total)),
                    ("avg cost per row", "–" if run.cost_avg_per_row is None else _fmt_money(run.cost_avg_per_row)),
                    ("coverage", _pct(run.coverage.coverage))])]
    by_cost = sorted((g for g in run.gestures if g.cost_total), key=lambda g: (-g.cost_total, g.gesture_id))[:top]
    parts.append(bar_chart(CHART_TITLES["cost"], [g.gesture_id for g in by_cost],
                           [("cost", [g.cost_total for g in by_cost], A_COLOR)], "money"))
    fired = [g for g in run.gestures if g.fires][:top]
    parts.append(bar_chart(CHART_TITLES["fires_gesture"], [g.gesture_id for g in fired],
                           [("fires", [float(g.fires) for g in fired], A_COLOR)]))
    cov = run.coverage
    labels = ["all negative", *[r.reason for r in cov.by_reason]]
    values = [cov.coverage or 0.0, *[r.coverage or 0.0 for r in cov.by_reason]]
    parts.append(f'<h2>{escape(CHART_TITLES["coverage"])}</h2><p class="muted">{escape(cov.definition)}. '
                 f"{cov.covered:,} of {cov.negative:,} negative experiences covered.</p>")
    parts.append(bar_chart(CHART_TITLES["coverage"], labels, [("coverage", values, A_COLOR)], "pct", 1.0))
    parts.append("<h2>Segments</h2>")
    for dim in ("tenure", "channel", "issue"):
        segs = [s for s in run.segments if s.dimension == dim][: top if dim == "issue" else None]
        title = CHART_TITLES["segment"].format(dim=_DIM_TITLES[dim])
        parts.append(bar_chart(title, [s.value for s in segs],
                               [("fires", [float(s.fires) for s in segs], A_COLOR)]))
        parts.append(_table(["segment", "rows", "rows with gesture", "fires", "cost", "avg cost/row", "negative",
                             "coverage"],
                            [[escape(s.value), f"{s.rows:,}", f"{s.rows_with_gesture:,}", f"{s.fires:,}",
                              _fmt_money(s.cost_total),
                              "–" if s.cost_avg_per_row is None else _fmt_money(s.cost_avg_per_row),
                              f"{s.negative:,}", _pct(s.coverage)] for s in segs]))
    parts.append("<h2>Gestures</h2>")
    parts.append(_table(["gesture", "tier", "fires", "share", "total cost", "avg cost", "unknown cost", "withheld"],
                        [[escape(g.gesture_id), escape(g.tier), f"{g.fires:,}", _pct(g.share),
                          _fmt_money(g.cost_total), "–" if g.cost_avg is None else _fmt_money(g.cost_avg),
                          f"{g.cost_unknown:,}",
                          escape(", ".join(f"{k} {v:,}" for k, v in g.held.items()) or "–")] for g in run.gestures]))
    parts.append("<h2>Tiers</h2>")
    parts.append(_table(["tier", "fires", "rows", "share", "total cost", "avg cost"],
                        [[escape(t.tier), f"{t.fires:,}", f"{t.rows:,}", _pct(t.share), _fmt_money(t.cost_total),
                          "–" if t.cost_avg is None else _fmt_money(t.cost_avg)] for t in run.tiers]))
    parts.append("<h2>Rules</h2>")
    parts.append(_table(["rule", "fires", "held only", "share", "cost backed", "gestures"],
                        [[escape(r.rule_id), f"{r.fires:,}", f"{r.held_only:,}", _pct(r.share),
                          _fmt_money(r.cost_total), escape(", ".join(r.gestures))] for r in run.rules_fired]))
    return "".join(parts)


def render_html(report: BacktestReport, *, top: int = 25) -> str:
    """The whole report as one HTML document (a string)."""
    run = report.run
    body = [f"<h1>Backtest: {escape(report.history)}</h1>",
            f'<p class="muted">{report.rows_read:,} rows read, {report.rows_ok:,} used, '
            f"{report.rows_skipped:,} skipped · rule set {escape(run.label)} "
            f"({escape(', '.join(run.ruleset_versions) or '–')})"]
    if report.period_start:
        body.append(f" · period {escape(report.period_start.isoformat())} to "
                    f"{escape(report.period_end.isoformat() if report.period_end else '')}")
    if report.timing:
        body.append(f" · {escape(report.timing.engine)}, {report.timing.seconds:,.1f} s")
    body.append("</p>")
    if report.compare and report.other:
        cmp_ = report.compare
        other = report.other
        body.append("<h2>A vs B</h2>")
        body.append(_kpis([("rows changed", f"{cmp_.rows_changed:,} ({_pct(cmp_.share_changed)})"),
                           ("cost A", _fmt_money(cmp_.cost_a)), ("cost B", _fmt_money(cmp_.cost_b)),
                           ("cost delta", f"{cmp_.cost_delta:+,.2f}"),
                           ("coverage A", _pct(cmp_.coverage_a)), ("coverage B", _pct(cmp_.coverage_b))]))
        body.append(f'<p>A = {escape(cmp_.a)}; B = {escape(cmp_.b)}. Gestures only B recommends: '
                    f'{escape(", ".join(cmp_.gestures_gained) or "none")}. Only A: '
                    f'{escape(", ".join(cmp_.gestures_lost) or "none")}.</p>')
        top_g = cmp_.gestures[:top]
        labels = [d.gesture_id for d in top_g]
        body.append(bar_chart(CHART_TITLES["ab_fires"], labels,
                              [("A", [float(d.fires_a) for d in top_g], A_COLOR),
                               ("B", [float(d.fires_b) for d in top_g], B_COLOR)]))
        by_cost = sorted((d for d in cmp_.gestures if d.cost_a or d.cost_b),
                         key=lambda d: (-max(d.cost_a, d.cost_b), d.gesture_id))[:top]
        body.append(bar_chart(CHART_TITLES["ab_cost"], [d.gesture_id for d in by_cost],
                              [("A", [d.cost_a for d in by_cost], A_COLOR),
                               ("B", [d.cost_b for d in by_cost], B_COLOR)], "money"))
        reasons = ["all negative", *[r.reason for r in run.coverage.by_reason]]
        body.append(bar_chart(
            CHART_TITLES["ab_coverage"], reasons,
            [("A", [run.coverage.coverage or 0.0, *[r.coverage or 0.0 for r in run.coverage.by_reason]], A_COLOR),
             ("B", [other.coverage.coverage or 0.0, *[r.coverage or 0.0 for r in other.coverage.by_reason]],
              B_COLOR)], "pct", 1.0))
        body.append(_table(["gesture", "fires A", "fires B", "Δ fires", "cost A", "cost B", "Δ cost",
                            "rows gained", "rows lost"],
                           [[escape(d.gesture_id), f"{d.fires_a:,}", f"{d.fires_b:,}", _signed(d.fires_delta),
                             _fmt_money(d.cost_a), _fmt_money(d.cost_b), _signed(d.cost_delta, True),
                             f"{d.rows_gained:,}", f"{d.rows_lost:,}"] for d in cmp_.gestures]))
        body.append(f"<h2>A: {escape(run.label)}</h2>")
        body.append(_run_section(run, top))
        body.append(f"<h2>B: {escape(other.label)}</h2>")
        body.append(_run_section(other, top))
    else:
        body.append(_run_section(run, top))
    if report.bad_rows:
        body.append(f"<h2>Skipped rows ({report.rows_skipped:,})</h2>")
        body.append(_table(["line", "reason"], [[str(b.line), f'<span class="bad">{escape(b.reason)}</span>']
                                                for b in report.bad_rows[:1000]]))
        if len(report.bad_rows) > 1000:
            body.append(f'<p class="muted">… and {len(report.bad_rows) - 1000:,} more (see --json).</p>')
    return _page(f"Backtest: {report.history}", "".join(body))


def render_replay_html(report: ReplayReport, *, top: int = 25) -> str:
    """A decision-log replay as one HTML document."""
    body = [f"<h1>Decision replay: {escape(report.label)}</h1>",
            f'<p class="muted">store {escape(report.store)}'
            f"{' · tenant ' + escape(report.tenant) if report.tenant else ''}</p>",
            _kpis([("decisions", f"{report.decisions:,}"), ("replayed", f"{report.replayed:,}"),
                   ("changed", f"{report.changed:,} ({_pct(report.share_changed)})"),
                   ("limit", _pct(report.max_change)), ("cost delta", f"{report.cost_delta:+,.2f}")])]
    top_g = report.gestures[:top]
    body.append(bar_chart("Decisions gaining / losing each gesture", [g.gesture_id for g in top_g],
                          [("gained", [float(g.gained) for g in top_g], B_COLOR),
                           ("lost", [float(g.lost) for g in top_g], A_COLOR)]))
    for title, items in (("Customers who would gain a gesture", report.customers_gaining),
                         ("Customers who would lose a gesture", report.customers_losing)):
        body.append(f"<h2>{escape(title)} ({len(items):,})</h2>")
        body.append(_table(["customer", "decision", "gesture"],
                           [[escape(c.customer_id or "–"), escape(c.decision_id), escape(c.gesture_id)]
                            for c in items[:2000]]))
    return _page(f"Decision replay: {report.label}", "".join(body))
