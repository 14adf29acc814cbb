// The supervisor's view: pending approval requests (what would be said, and why), approved or
// declined with a note; what was decided lately.
"use strict";
(function () {
  const R = window.Rec;
  const { el, $ } = R;
  const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 16) : "");

  function card(a) {
    const id = `req-${a.id}`;
    const note = el("textarea", { id: `${id}-note`, rows: "2", maxlength: "2000" });
    const status = el("p", { class: "status", role: "status" });
    const approve = el("button", { type: "button", class: "primary", "data-decision": "approved" }, "Approve");
    const decline = el("button", { type: "button", class: "danger", "data-decision": "declined" }, "Decline");
    const box = el("article", { class: `gesture needs-approval tier-${a.tier}`, "data-approval": a.id, "aria-labelledby": `${id}-title` },
      el("div", { class: "card-head" }, R.tierChip(a.tier), el("h3", { id: `${id}-title`, text: a.title }),
         el("span", { class: "cost", text: R.money(a.cost) })),
      el("p", { class: "hint" }, `Asked by ${a.requested_by} at ${when(a.requested_at)} · customer ${a.customer_id || "unknown"} · issue ${R.words(a.issue)}`),
      el("div", { class: "script-box" }, el("p", { class: "label" }, "The agent would say:"), el("blockquote", { class: "script", text: a.script || "(no script)" })),
      a.agent_reason ? el("p", { class: "reason" }, el("strong", {}, "Why: "), a.agent_reason) : null,
      el("p", { class: "detail" }, el("strong", {}, "Needs approval because: "), a.detail),
      a.request_note ? el("p", { class: "detail" }, el("strong", {}, "Agent's note: "), a.request_note) : null,
      el("div", { class: "field" }, el("label", { for: note.id, text: "Note to the agent (kept in the decision log)" }), note),
      el("div", { class: "actions" }, approve, decline), status);
    for (const button of [approve, decline]) {
      button.addEventListener("click", async () => {
        approve.disabled = decline.disabled = true;
        try {
          const done = await R.api("POST", `/v1/approvals/${encodeURIComponent(a.id)}/decision`,
                                   { decision: button.dataset.decision, note: note.value.trim() || null });
          R.showStatus(status, `${done.status === "approved" ? "Approved" : "Declined"}: the agent sees it now.`, "ok");
          box.classList.add("decided");
          note.disabled = true;
          load(false);
        } catch (err) {
          approve.disabled = decline.disabled = false;
          R.showStatus(status, err.message, "bad");
        }
      });
    }
    return box;
  }

  // pendingToo: false keeps the queue as it is (a card just decided stays, with its result)
  async function load(pendingToo) {
    $("error").textContent = "";
    try {
      const [pending, all] = await Promise.all([pendingToo === false ? null : R.api("GET", "/v1/approvals?status=pending"),
                                                R.api("GET", "/v1/approvals?status=all&limit=30")]);
      if (pending) {
        R.currency = (await R.api("GET", "/v1/business").catch(() => ({ currency: R.currency }))).currency;
        $("pending").replaceChildren(...pending.approvals.map(card));
        $("pending-count").textContent = pending.approvals.length
          ? `${pending.approvals.length} request${pending.approvals.length === 1 ? "" : "s"} waiting` : "Nothing is waiting for approval.";
      }
      const table = $("decided");
      table.replaceChildren(...all.approvals.filter((a) => a.status !== "pending").map((a) => el("tr", {},
        el("td", { text: when(a.decided_at) }), el("td", { text: a.title }),
        el("td", {}, el("span", { class: `chip decision-${a.status}` }, a.status)),
        el("td", { text: a.decided_by || "" }), el("td", { text: a.requested_by }), el("td", { text: a.decision_note || "" }))));
    } catch (err) {
      $("error").textContent = R.authMessage(err) || err.message;
    }
  }
  R.bindKey($("apikey"), () => load());
  $("refresh").addEventListener("click", () => load());
  load();
})();
