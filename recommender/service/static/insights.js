// Insights people read: titles, acceptance and cost per gesture over time, coverage of negative
// experiences, the extras rate against the business's target; charts drawn as inline SVG here
// (no third-party code). Below them, what outcomes taught: the learning state GET /v1/learning
// serves (an admin key), shown as it comes (no number is computed here), in words.
"use strict";
(function () {
  const R = window.Rec;
  const { el, $, svg } = R;
  const INK = "#1d2330", GRID = "#c9ced6", BLUE = "#1d4ed8", GREEN = "#1f7a6e", AMBER = "#b45f06";

  function frame(title, summary, width, height) {
    const node = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": `${title}: ${summary}`,
                              class: "chart", preserveAspectRatio: "xMinYMin meet" });
    return node;
  }

  // A time series: one point per day of the period (missing days are gaps, not zeros).
  function lineChart(title, days, value, format, max, colour) {
    const W = 560, H = 220, L = 52, B = 34, T = 14, Rt = 26;
    const pts = days.map((d) => ({ day: d.day, v: value(d) })).filter((p) => p.v !== null && p.v !== undefined);
    const top = max ?? Math.max(1e-9, ...pts.map((p) => p.v));
    const summary = pts.length ? pts.map((p) => `${p.day} ${format(p.v)}`).join(", ") : "no data in this period";
    const node = frame(title, summary, W, H);
    const x = (i) => L + (pts.length <= 1 ? (W - L - Rt) / 2 : (i * (W - L - Rt)) / (pts.length - 1));
    const y = (v) => T + (H - T - B) * (1 - v / top);
    for (const f of [0, 0.5, 1]) {
      node.append(svg("line", { x1: L, x2: W - Rt, y1: y(top * f), y2: y(top * f), stroke: GRID, "stroke-width": 1 }),
                  svg("text", { x: L - 6, y: y(top * f) + 4, "text-anchor": "end", "font-size": 12, fill: INK, text: format(top * f) }));
    }
    if (!pts.length) node.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: INK, "font-size": 14, text: "No answers recorded in this period" }));
    if (pts.length > 1) node.append(svg("polyline", { points: pts.map((p, i) => `${x(i)},${y(p.v)}`).join(" "), fill: "none", stroke: colour, "stroke-width": 2.5 }));
    pts.forEach((p, i) => {
      node.append(svg("circle", { cx: x(i), cy: y(p.v), r: 4, fill: colour }, svg("title", { text: `${p.day}: ${format(p.v)}` })));
      if (pts.length <= 8 || i === 0 || i === pts.length - 1 || i % Math.ceil(pts.length / 6) === 0) {
        node.append(svg("text", { x: x(i), y: H - 12, "text-anchor": "middle", "font-size": 12, fill: INK, text: p.day.slice(5) }));
      }
    });
    return figure(title, node);
  }

  function barChart(title, days, value, format, colour) {
    const W = 560, H = 220, L = 64, B = 34, T = 14, Rt = 26;
    const pts = days.map((d) => ({ day: d.day, v: value(d) }));
    const top = Math.max(1e-9, ...pts.map((p) => p.v));
    const summary = pts.length ? pts.map((p) => `${p.day} ${format(p.v)}`).join(", ") : "no data in this period";
    const node = frame(title, summary, W, H);
    const y = (v) => T + (H - T - B) * (1 - v / top);
    for (const f of [0, 0.5, 1]) {
      node.append(svg("line", { x1: L, x2: W - Rt, y1: y(top * f), y2: y(top * f), stroke: GRID, "stroke-width": 1 }),
                  svg("text", { x: L - 6, y: y(top * f) + 4, "text-anchor": "end", "font-size": 12, fill: INK, text: format(top * f) }));
    }
    if (!pts.length) node.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: INK, "font-size": 14, text: "Nothing delivered in this period" }));
    const slot = (W - L - Rt) / Math.max(1, pts.length), bw = Math.max(4, Math.min(40, slot * 0.7));
    pts.forEach((p, i) => {
      const cx = L + slot * (i + 0.5);
      node.append(svg("rect", { x: cx - bw / 2, y: y(p.v), width: bw, height: Math.max(0, H - B - y(p.v)), fill: colour },
                      svg("title", { text: `${p.day}: ${format(p.v)}` })));
      if (pts.length <= 8 || i % Math.ceil(pts.length / 6) === 0) {
        node.append(svg("text", { x: cx, y: H - 12, "text-anchor": "middle", "font-size": 12, fill: INK, text: p.day.slice(5) }));
      }
    });
    return figure(title, node);
  }

  // A share against a target: a bar for the share, a line at the target.
  function gauge(title, rate, target, detail) {
    const W = 560, H = 92, L = 8, Rt = 8, Y = 30, BH = 26;
    const span = W - L - Rt;
    const summary = `${R.percent(rate)}${target !== null && target !== undefined ? ` against a target of ${R.percent(target)}` : ""}; ${detail}`;
    const node = frame(title, summary, W, H);
    node.append(svg("rect", { x: L, y: Y, width: span, height: BH, fill: "#eef1f5", stroke: GRID }));
    if (rate !== null && rate !== undefined) node.append(svg("rect", { x: L, y: Y, width: Math.max(2, span * Math.min(1, rate)), height: BH, fill: GREEN }));
    node.append(svg("text", { x: L, y: 20, "font-size": 13, fill: INK, text: `${R.percent(rate)} ${detail}` }));
    if (target !== null && target !== undefined) {
      const tx = L + span * Math.min(1, target);
      node.append(svg("line", { x1: tx, x2: tx, y1: Y - 6, y2: Y + BH + 6, stroke: INK, "stroke-width": 3 }),
                  svg("text", { x: Math.min(tx, W - 110), y: Y + BH + 22, "font-size": 13, fill: INK, text: `target ${R.percent(target)}` }));
    }
    return figure(title, node);
  }

  function figure(title, node) {
    return el("figure", { class: "chart-box" }, el("figcaption", { text: title }), node);
  }

  function sparkline(days, label) {
    const W = 120, H = 28;
    const vals = days.map((d) => d.accepted + d.declined + d.offered + d.delivered);
    const top = Math.max(1, ...vals);
    const node = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
                              "aria-label": `${label}: ${days.map((d, i) => `${d.day} ${vals[i]}`).join(", ") || "none"}` });
    const bw = W / Math.max(1, vals.length);
    vals.forEach((v, i) => node.append(svg("rect", { x: i * bw + 1, y: H - (H - 2) * (v / top), width: Math.max(2, bw - 2), height: (H - 2) * (v / top), fill: BLUE })));
    return node;
  }

  async function load() {
    $("error").textContent = "";
    let data = null;
    try {
      data = await R.api("GET", `/v1/insights?days=${encodeURIComponent($("days").value)}&limit=20`);
    } catch (err) {
      $("error").textContent = R.authMessage(err) || err.message;
    }
    if (data) show(data);
    await loadLearning(data);
  }

  function show(data) {
    R.currency = data.currency || R.currency;
    const title = (id) => (data.titles || {})[id] || R.words(id);
    $("acceptance").textContent = R.percent(data.acceptance_rate);
    $("answered").textContent = `${data.accepted} accepted of ${data.accepted + data.declined} answered`;
    const cov = data.coverage || { negative: 0, covered: 0, rate: null };
    $("coverage").textContent = R.percent(cov.rate);
    $("coverage-text").textContent = `${cov.covered} of ${cov.negative} negative experiences got a recover gesture`;
    const ex = data.extras || { on_offer: 0, given: 0, rate: null, target: null };
    $("extras").textContent = R.percent(ex.rate);
    $("extras-text").textContent = `${ex.given} of ${ex.on_offer} with an extra on offer; target ${R.percent(ex.target)}`;
    const spent = (data.days || []).reduce((s, d) => s + d.cost, 0);
    $("spent").textContent = R.money(spent);
    $("spent-text").textContent = `${(data.days || []).reduce((s, d) => s + d.delivered, 0)} gestures delivered`;

    const grid = $("chart-grid");
    grid.replaceChildren(
      lineChart("Acceptance rate per day", data.days || [], (d) => d.acceptance_rate, R.percent, 1, BLUE),
      barChart(`Delivered cost per day (${R.currency})`, data.days || [], (d) => d.cost, (v) => R.money(v), AMBER),
      gauge("Extras rate against the business's target", ex.rate, ex.target, `of interactions with an extra on offer got one`),
      gauge("Coverage of negative experiences", cov.rate, null, `of negative experiences got a recover gesture`));

    const byId = data.gesture_days || {};
    $("per-gesture").replaceChildren(...data.gestures.map((g) => {
      const answered = g.accepted + g.declined;
      return el("tr", { "data-gesture": g.key },
        el("td", {}, el("strong", { text: title(g.key) })), el("td", { text: g.recommended }), el("td", { text: g.accepted }),
        el("td", { text: g.declined }), el("td", { text: answered ? R.percent(g.accepted / answered) : "—" }),
        el("td", { text: R.money(g.total_cost) }), el("td", {}, sparkline(byId[g.key] || [], `Answers per day for ${title(g.key)}`)));
    }));
    $("recent").replaceChildren(...data.recent.map((o) => el("tr", {},
      el("td", { text: o.recorded_at.replace("T", " ").slice(0, 16) }), el("td", { text: title(o.gesture_id) }),
      el("td", { text: o.outcome }), el("td", { text: o.customer_id || "" }), el("td", { text: o.approved_by || "" }))));
  }
  // -- what outcomes taught (docs/learning.md) ---------------------------------------------------
  const LEARNING_ROWS = 200;
  const learning = { state: null, title: (id) => R.words(id) };

  // A segment key ("family=billing_error|tier=recover|value=high|staff=genuine") in words.
  const SEGMENT_WORDS = {
    family: (v) => R.words(v),
    tier: (v) => `${(R.TIERS[v] || { label: R.words(v) }).label} tier`,
    value: (v) => ({ high: "high-value customers", standard: "standard customers" })[v] || "value unknown",
    staff: (v) => `${R.words(v)} staff`,
    severity: (v) => (v === "none" ? "no harm done" : `${R.words(v)} severity`),
    channel: (v) => `by ${R.words(v)}`,
    store: (v) => `store ${v}`,
    vertical: (v) => R.words(v),
  };
  learning.segment = function (key) {
    if (!key || key === "all") return "all customers";
    return key.split("|").map((part) => {
      const [dim, value] = part.split("=");
      return (SEGMENT_WORDS[dim] || ((v) => `${R.words(dim)} ${R.words(v)}`))(value || "");
    }).join(" · ");
  };
  const when = (iso) => String(iso || "").replace("T", " ").slice(0, 16);
  const DIMENSIONS = { family: "issue family", tier: "tier", value_band: "customer value", staff_level: "staff level",
                       severity: "severity", channel: "channel", store: "store", vertical: "trade" };

  function learningState(kind, label, text) {
    $("learning-state").replaceChildren(R.el("strong", { class: `chip learning-${kind}`, text: label }), ` ${text}`);
    $("learning-state").dataset.state = kind;
  }

  // The posterior's 95% range as a small bar (the words beside it say the same: aria-hidden).
  function rangeBar(lo, hi, mean) {
    const W = 120, H = 14;
    return R.svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, "aria-hidden": "true", class: "range" },
      R.svg("rect", { x: 0, y: 5, width: W, height: 4, fill: "#e3e7ec" }),
      R.svg("rect", { x: W * lo, y: 3, width: Math.max(2, W * (hi - lo)), height: 8, fill: "#8fb0f0" }),
      R.svg("rect", { x: Math.min(W - 2, W * mean - 1), y: 0, width: 3, height: H, fill: "#1d4ed8" }));
  }

  function learningRows() {
    const s = learning.state;
    const gesture = $("learning-gesture").value, which = $("learning-which").value;
    const rows = s.segments.filter((r) => (!gesture || r.gesture_id === gesture) &&
      (!which || (which === "learned") === r.learned));
    const min = s.config.min_evidence;
    $("learning-rows").replaceChildren(...rows.map((r) => R.el("tr", { "data-gesture": r.gesture_id, "data-segment": r.segment },
      R.el("th", { scope: "row", text: learning.title(r.gesture_id) }),
      R.el("td", { text: learning.segment(r.segment) }),
      R.el("td", { text: r.text }),
      R.el("td", { class: "interval" }, `${R.percent(r.interval[0])} to ${R.percent(r.interval[1])} `,
           rangeBar(r.interval[0], r.interval[1], r.acceptance)),
      R.el("td", { text: r.learned ? "Yes" : `Not yet: ${r.outcomes} of ${min} outcomes` }),
      R.el("td", { text: when(r.updated_at) }))));
    const cut = s.segments.length >= LEARNING_ROWS ? ` (the ${LEARNING_ROWS} with most outcomes)` : "";
    $("learning-shown").textContent = `${rows.length} of ${s.segments.length} segments shown${cut}.`;
  }

  function showLearning(s, insights) {
    learning.state = s;
    learning.title = (id) => ((insights && insights.titles) || {})[id] || R.words(id);
    if (!s.enabled) {
      learningState("off", "Off", "on this server (configuration: learning = false): answers follow the rules' " +
        "order; what was learned is kept but not used.");
    } else if (s.frozen) {
      learningState("frozen", "Frozen", `for ${s.tenant}: what was learned is kept and used, and new outcomes no ` +
        "longer change it (recommender learning freeze --thaw resumes).");
    } else {
      learningState("on", "On", `for ${s.tenant}: outcomes decide which of the gestures the rules allow is offered ` +
        "first, within every guardrail.");
    }
    const c = s.config;
    const dims = c.segments.map((d) => DIMENSIONS[d] || R.words(d));
    const last = s.segments.reduce((m, r) => (r.updated_at > m ? r.updated_at : m), "");
    $("learning-model").textContent = `Similar customers share ${dims.length ? dims.join(", ") : "the business only"}. ` +
      `A gesture changes the order in a segment once it has ${c.min_evidence} outcomes there; ` +
      `an outcome ${c.half_life_days} days old counts half. ` +
      (last ? `Last outcome learned from: ${when(last)} UTC.` : "Nothing learned yet: every answer follows its rules' order.");
    const ex = insights && insights.extras;
    const against = ex && ex.target !== null && ex.target !== undefined ? `, against the business's extras rate of ${R.percent(ex.target)}` : "";
    $("learning-explore").textContent = !(ex && ex.on_offer) ? ""
      : (s.enabled ? "Exploring within the extras budget: " : "Extras (learning is off, so nothing is explored): ") +
        `${ex.given} of ${ex.on_offer} interactions with an extra on offer got one (${R.percent(ex.rate)})${against}. ` +
        (s.enabled ? "Learning chooses which extra; whether one is given stays the extras draw."
                   : "The rules' order chooses which extra; whether one is given stays the extras draw.");
    const select = $("learning-gesture"), keep = select.value;
    const ids = [...new Set(s.segments.map((r) => r.gesture_id))].sort((a, b) => learning.title(a).localeCompare(learning.title(b)));
    select.replaceChildren(R.el("option", { value: "", text: "All gestures" }),
      ...ids.map((g) => R.el("option", { value: g, text: learning.title(g), selected: g === keep })));
    $("learning-details").hidden = false;
    learningRows();
  }

  async function loadLearning(insights) {
    let s;
    try {
      s = await R.api("GET", `/v1/learning?limit=${LEARNING_ROWS}`);
    } catch (err) {
      $("learning-details").hidden = true;
      learning.state = null;
      if (err instanceof R.ApiError && err.status === 403 && err.code === "forbidden_scope") {
        learningState("admin", "Needs admin", "What this business learned from outcomes is shown to keys with the " +
          "admin scope: sign in with one to see it (answers still use it).");
      } else if (err instanceof R.ApiError && err.status === 401) {
        learningState("signin", "Sign in", "with an admin key to see what this business learned from outcomes.");
      } else if (err instanceof R.ApiError && err.code === "no_store") {
        learningState("off", "No store", "on this server: nothing is learned without one; answers follow the rules' order.");
      } else {
        learningState("off", "Unavailable", err.message);
      }
      return;
    }
    showLearning(s, insights);
  }

  $("learning-gesture").addEventListener("change", () => learning.state && learningRows());
  $("learning-which").addEventListener("change", () => learning.state && learningRows());
  R.bindKey($("apikey"), load);
  $("refresh").addEventListener("click", load);
  $("days").addEventListener("change", load);
  load();
})();
