// Agent console: paste a context, see ranked gestures, record what happened in one click.
// Data from the API is always inserted with textContent, never as HTML.
"use strict";
const $ = (id) => document.getElementById(id);
const keyInput = $("apikey");
keyInput.value = sessionStorage.getItem("recommender-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("recommender-key", keyInput.value.trim()));

async function api(method, path, body, extraHeaders) {
  const headers = { "X-API-Key": keyInput.value.trim(), ...(extraHeaders || {}) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const details = (data.errors || []).map((e) => `${e.field || e.loc || ""}: ${e.message || e.msg || ""}`).join("\n");
    throw new Error(`${res.status} ${data.detail || data.message || res.statusText}${details ? "\n" + details : ""}`);
  }
  return data;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(err) { $("error").textContent = err ? String(err.message || err) : ""; }

function render(result) {
  const list = $("results");
  list.replaceChildren();
  $("receipt").textContent = `decision ${result.decision_id || "(not logged: no store)"} · receipt ${result.receipt.id} · ruleset ${result.ruleset_version}`;
  if (!result.recommendations.length) list.append(el("p", "muted", "No gesture recommended for this context."));
  for (const rec of result.recommendations) {
    const box = el("div", `gesture ${rec.tier}`);
    box.dataset.gesture = rec.gesture_id;
    const cost = rec.cost === null ? "cost unknown" : `cost ${rec.cost.toFixed(2)}`;
    box.append(el("strong", "", rec.title), el("span", "muted", `  ${rec.tier} · ${cost} · score ${rec.score}`));
    box.append(el("div", "script", rec.script), el("div", "why", rec.agent_reason));
    if (result.decision_id) {
      const status = el("span", "status");
      for (const outcome of ["offered", "accepted", "declined", "delivered"]) {
        const b = el("button", "", outcome[0].toUpperCase() + outcome.slice(1));
        b.dataset.outcome = outcome;
        b.addEventListener("click", () => record(result.decision_id, rec.gesture_id, outcome, status));
        box.append(b);
      }
      box.append(status);
    }
    list.append(box);
  }
  for (const w of [...result.needs_approval, ...result.withheld]) {
    list.append(el("div", "muted", `${w.reason === "needs_approval" ? "Needs approval" : "Withheld"}: ${w.title} (${w.detail})`));
  }
  if (result.missing_inputs.length) list.append(el("div", "muted", `A richer context could change this: ${result.missing_inputs.join(", ")}`));
}

async function record(decisionId, gestureId, outcome, status) {
  showError();
  try {
    const key = `console-${decisionId}-${gestureId}-${outcome}`;  // a double click never counts twice
    await api("POST", `/v1/decisions/${encodeURIComponent(decisionId)}/outcomes`,
              { gesture_id: gestureId, outcome }, { "Idempotency-Key": key });
    status.textContent = `${outcome} recorded`;
  } catch (err) { showError(err); }
}

$("recommend").addEventListener("click", async () => {
  showError();
  let ctx;
  try { ctx = JSON.parse($("context").value); } catch (err) { return showError(`context is not valid JSON: ${err.message}`); }
  try { render(await api("POST", "/v1/recommendations", ctx)); } catch (err) { showError(err); }
});

$("load-customer").addEventListener("click", async () => {
  showError();
  const id = $("customer-id").value.trim();
  if (!id) return showError("enter a customer id");
  try {
    const view = await api("GET", `/v1/customers/${encodeURIComponent(id)}`);
    let ctx = {};
    try { ctx = JSON.parse($("context").value); } catch (_) { ctx = { interaction: { issue: "" } }; }
    ctx.customer = { ...(ctx.customer || {}), id };
    const profile = view.profile || view;
    if (profile.preferences && Object.keys(profile.preferences).length) ctx.customer.preferences = profile.preferences;
    if (profile.interests && profile.interests.length) ctx.customer.interests = profile.interests;
    $("context").value = JSON.stringify(ctx, null, 2);
  } catch (err) { showError(err); }
});
