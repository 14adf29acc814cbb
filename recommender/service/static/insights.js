// Insights: recent outcomes, acceptance rate and cost per gesture, as inline SVG charts.
"use strict";
const $ = (id) => document.getElementById(id);
const key = () => $("apikey").value.trim();
$("apikey").value = sessionStorage.getItem("recommender-key") || "";

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function barChart(title, rows, value, format) {
  const svgNS = "http://www.w3.org/2000/svg";
  const width = 640, bar = 22, left = 230, max = Math.max(1e-9, ...rows.map(value));
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", rows.length * (bar + 6) + 30);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const head = document.createElementNS(svgNS, "text");
  head.setAttribute("x", 0); head.setAttribute("y", 16); head.setAttribute("font-weight", "600");
  head.textContent = title;
  svg.append(head);
  rows.forEach((row, i) => {
    const y = 26 + i * (bar + 6);
    const label = document.createElementNS(svgNS, "text");
    label.setAttribute("x", 0); label.setAttribute("y", y + 15); label.setAttribute("font-size", "12");
    label.textContent = row.key;
    const rect = document.createElementNS(svgNS, "rect");
    rect.setAttribute("x", left); rect.setAttribute("y", y);
    rect.setAttribute("width", Math.max(1, (width - left - 90) * value(row) / max)); rect.setAttribute("height", bar);
    rect.setAttribute("fill", "#457b9d");
    const num = document.createElementNS(svgNS, "text");
    num.setAttribute("x", left + 4 + (width - left - 90) * value(row) / max); num.setAttribute("y", y + 15);
    num.setAttribute("font-size", "12");
    num.textContent = format(value(row));
    svg.append(label, rect, num);
  });
  return svg;
}

async function load() {
  $("error").textContent = "";
  const res = await fetch("/v1/insights", { headers: { "X-API-Key": key() } });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) { $("error").textContent = `${res.status} ${data.detail || res.statusText}`; return; }
  const rate = data.acceptance_rate;
  $("acceptance").textContent = rate === null ? "—" : `${Math.round(rate * 100)}%`;
  $("answered").textContent = `${data.accepted} accepted of ${data.accepted + data.declined} answered`;
  const charts = $("charts");
  charts.replaceChildren();
  const rows = data.gestures;
  charts.append(barChart("Outcomes recorded per gesture", rows, (r) => r.offered + r.accepted + r.declined + r.delivered, (v) => String(v)));
  charts.append(barChart("Cost of delivered gestures", rows, (r) => r.total_cost, (v) => v.toFixed(2)));
  const table = $("recent");
  table.replaceChildren();
  for (const o of data.recent) {
    const tr = el("tr");
    tr.append(el("td", "", o.recorded_at.replace("T", " ").slice(0, 19)), el("td", "", o.gesture_id),
              el("td", "", o.outcome), el("td", "", o.customer_id || ""));
    table.append(tr);
  }
}
$("refresh").addEventListener("click", load);
$("apikey").addEventListener("change", () => { sessionStorage.setItem("recommender-key", key()); load(); });
load();
