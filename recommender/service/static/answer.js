// Answers for people: the case as the rules saw it, each gesture's title, script (with a copy
// button) and reason in one sentence; the rule trace, conditions and score behind "Why?";
// gestures that need approval with what would be said and a "Request approval" action; and the
// what-if pane (the same context explained twice, one field changed, the gestures diffed).
"use strict";
(function () {
  const R = window.Rec;
  const { el } = R;
  const OUTCOMES = ["offered", "accepted", "declined", "delivered"];

  function assessment(result) {
    const a = result.assessment;
    if (!a) return null;
    const family = a.family ? R.words(a.family) : "an unknown kind of issue";
    const box = el("div", { class: `assessment band-${a.band}`, id: "assessment" },
      el("h3", {}, "The case"),
      el("p", { class: "case-line" }, el("span", { class: `chip band band-${a.band}` }, `${a.band[0].toUpperCase()}${a.band.slice(1)}`),
         ` ${family}, severity ${a.severity} of 4`));
    if (a.reasons.length) box.append(el("ul", { class: "reasons" }, a.reasons.map((r) => el("li", { text: r }))));
    return box;
  }

  function why(rec) {
    const details = el("details", { class: "why" }, el("summary", {}, "Why?"));
    details.append(el("p", { text: rec.agent_reason }));
    for (const rule of rec.rules) {
      const box = el("div", { class: "rule" },
        el("p", {}, el("strong", { text: `Rule ${rule.rule_id}` }), ` (pack ${rule.pack}, priority ${rule.priority})`),
        el("p", { class: "because", text: rule.because }));
      if (rule.conditions.length) {
        box.append(el("ul", { class: "conditions" }, rule.conditions.map((c) =>
          el("li", {}, el("code", { text: c.text }), c.actual !== null && c.actual !== undefined ? ` (here: ${JSON.stringify(c.actual)})` : ""))));
      }
      details.append(box);
    }
    details.append(el("p", { class: "hint" }, `Score ${rec.score}; ${rec.authority} staff and above may give it; from ${rec.source || "the rules"}.`));
    return details;
  }

  function scriptBlock(text, id) {
    const status = el("span", { class: "status", role: "status" });
    const copy = el("button", { type: "button", class: "secondary small copy", "aria-describedby": id }, "Copy script");
    copy.addEventListener("click", () => R.copy(text, status));
    return el("div", { class: "script-box" },
      el("p", { class: "label" }, "Say:"),
      el("blockquote", { class: "script", id, text }),
      el("div", { class: "actions" }, copy, status));
  }

  class Answer {
    constructor(root, opts) {
      this.root = root;
      this.opts = opts || {};
      this.timers = [];
    }

    clear() {
      for (const t of this.timers) clearTimeout(t);
      this.timers = [];
      this.root.replaceChildren();
    }

    render(result, context) {
      this.clear();
      this.result = result;
      this.context = context;
      const root = this.root;
      root.append(el("h2", { id: "answer-title", tabindex: "-1" }, "What to do"));
      const a = assessment(result);
      if (a) root.append(a);
      for (const note of result.notes || []) root.append(el("p", { class: "note", text: note }));
      const list = el("div", { class: "cards" });
      if (!result.recommendations.length) list.append(el("p", { class: "hint" }, "Nothing to offer for this case on your own: see below."));
      result.recommendations.forEach((rec, i) => list.append(this.card(rec, i)));
      root.append(list);
      if (result.needs_approval.length) {
        root.append(el("h3", {}, "Needs approval"));
        const box = el("div", { class: "cards" });
        result.needs_approval.forEach((item, i) => box.append(this.approvalCard(item, i)));
        root.append(box);
      }
      if (result.withheld.length) {
        const details = el("details", { class: "withheld" }, el("summary", {}, `Not offered now (${result.withheld.length})`));
        details.append(el("ul", {}, result.withheld.map((w) =>
          el("li", {}, el("strong", { text: w.title }), ` (${R.tierChip(w.tier).textContent}, ${R.money(w.cost)}): ${w.detail}`))));
        root.append(details);
      }
      root.append(el("p", { class: "hint receipt", id: "receipt" },
        `decision ${result.decision_id || "(not logged: no store)"} · receipt ${result.receipt.id} · ruleset ${result.ruleset_version}`));
    }

    card(rec, i) {
      const id = `rec-${i}`;
      const box = el("article", { class: `gesture tier-${rec.tier}`, "data-gesture": rec.gesture_id, "aria-labelledby": `${id}-title` },
        el("div", { class: "card-head" }, R.tierChip(rec.tier),
           el("h3", { id: `${id}-title`, text: rec.title }),
           el("span", { class: "cost", text: R.money(rec.cost) })),
        scriptBlock(rec.script, `${id}-script`),
        el("p", { class: "reason", text: R.firstSentence(rec.agent_reason) }),
        why(rec));
      if (rec.due_date) box.append(el("p", { class: "hint" }, `Follow up by ${rec.due_date}.`));
      if (this.result.decision_id) box.append(this.outcomeButtons(rec.gesture_id, rec.title));
      return box;
    }

    outcomeButtons(gestureId, title) {
      const status = el("span", { class: "status", role: "status" });
      const group = el("div", { class: "outcomes", role: "group", "aria-label": `What happened: ${title}` },
        el("span", { class: "label" }, "What happened?"));
      for (const outcome of OUTCOMES) {
        const b = el("button", { type: "button", class: "secondary small", "data-outcome": outcome }, outcome[0].toUpperCase() + outcome.slice(1));
        b.addEventListener("click", () => this.record(gestureId, outcome, status));
        group.append(b);
      }
      group.append(status);
      return group;
    }

    async record(gestureId, outcome, status) {
      const decisionId = this.result.decision_id;
      try {
        const key = `console-${decisionId}-${gestureId}-${outcome}`; // a double click never counts twice
        const rec = await R.api("POST", `/v1/decisions/${encodeURIComponent(decisionId)}/outcomes`,
                                { gesture_id: gestureId, outcome }, { "Idempotency-Key": key });
        R.showStatus(status, `${outcome} recorded${rec.approved_by ? ` (approved by ${rec.approved_by})` : ""}`, "ok");
      } catch (err) {
        R.showStatus(status, err.message, "bad");
      }
    }

    approvalCard(item, i) {
      const id = `approval-${i}`;
      const box = el("article", { class: `gesture needs-approval tier-${item.tier}`, "data-gesture": item.gesture_id,
                                  "aria-labelledby": `${id}-title` },
        el("div", { class: "card-head" }, R.tierChip(item.tier), el("h3", { id: `${id}-title`, text: item.title }),
           el("span", { class: "cost", text: R.money(item.cost) })));
      if (item.script) box.append(scriptBlock(item.script, `${id}-script`));
      if (item.agent_reason) box.append(el("p", { class: "reason", text: R.firstSentence(item.agent_reason) }));
      box.append(el("p", { class: "detail" }, el("strong", {}, "Needs approval: "), item.detail));
      const status = el("p", { class: "status", role: "status" });
      if (this.result.decision_id) {
        const note = el("input", { type: "text", id: `${id}-note`, autocomplete: "off", maxlength: "2000" });
        const ask = el("button", { type: "button", class: "primary small request-approval" }, "Request approval");
        const form = el("div", { class: "request" },
          el("label", { for: note.id, text: "Note for the approver (optional)" }), note, ask);
        ask.addEventListener("click", async () => {
          ask.disabled = true;
          try {
            const approval = await R.api("POST", "/v1/approvals", { decision_id: this.result.decision_id,
                                                                    gesture_id: item.gesture_id, note: note.value.trim() || null });
            form.remove();
            this.follow(approval, box, status, item);
          } catch (err) {
            ask.disabled = false;
            R.showStatus(status, err.message, "bad");
          }
        });
        box.append(form);
      } else {
        box.append(el("p", { class: "hint" }, "Approvals need a server with a store (the decision must be logged)."));
      }
      box.append(status);
      return box;
    }

    follow(approval, box, status, item) {
      box.dataset.approval = approval.id;
      if (approval.status === "pending") {
        R.showStatus(status, "Waiting for a supervisor to approve…", "wait");
        const poll = async () => {
          try {
            const fresh = await R.api("GET", `/v1/approvals/${encodeURIComponent(approval.id)}`);
            if (fresh.status !== "pending") return this.follow(fresh, box, status, item);
          } catch (_) { /* try again */ }
          this.timers.push(setTimeout(poll, 1500));
        };
        this.timers.push(setTimeout(poll, 1500));
        return;
      }
      const note = approval.decision_note ? `: “${approval.decision_note}”` : "";
      if (approval.status === "approved") {
        R.showStatus(status, `Approved by ${approval.decided_by}${note}. You may offer it now.`, "ok");
        box.classList.add("approved");
        box.append(this.outcomeButtons(item.gesture_id, item.title));
      } else {
        R.showStatus(status, `Declined by ${approval.decided_by}${note}.`, "bad");
      }
    }
  }
  R.Answer = Answer;

  // -- what if --------------------------------------------------------------------------------
  // Explain the context as it is and with one field changed; list the gestures that appear, go, stay.
  R.whatIf = async function (base, path, value) {
    const changed = JSON.parse(JSON.stringify(base));
    if (value === undefined) {
      const parts = path.split(".");
      const parent = R.deepGet(changed, parts.slice(0, -1).join("."));
      if (parent) delete parent[parts[parts.length - 1]];
    } else R.deepSet(changed, path, value);
    const [before, after] = await Promise.all([R.api("POST", "/v1/explain", base), R.api("POST", "/v1/explain", changed)]);
    const ids = (r) => new Map([...r.recommendations, ...r.needs_approval.map((n) => ({ ...n, pending: true }))]
      .map((g) => [g.gesture_id, g]));
    const a = ids(before), b = ids(after);
    return {
      before, after,
      appear: [...b.values()].filter((g) => !a.has(g.gesture_id)),
      go: [...a.values()].filter((g) => !b.has(g.gesture_id)),
      stay: [...b.values()].filter((g) => a.has(g.gesture_id)),
    };
  };

  R.renderWhatIf = function (root, diff, label) {
    root.replaceChildren();
    const item = (g, kind) => el("li", { "data-change": kind, "data-gesture": g.gesture_id },
      R.tierChip(g.tier), ` ${g.title}`, g.pending ? " (needs approval)" : "", ` · ${R.money(g.cost)}`);
    root.append(el("h3", {}, `If ${label}:`));
    const sevBefore = diff.before.assessment, sevAfter = diff.after.assessment;
    if (sevBefore && sevAfter && sevBefore.severity !== sevAfter.severity) {
      root.append(el("p", {}, `The case would be ${sevAfter.band} (severity ${sevAfter.severity}) instead of ${sevBefore.band} (${sevBefore.severity}).`));
    }
    const section = (title, list, kind) => {
      root.append(el("h4", {}, `${title} (${list.length})`));
      root.append(list.length ? el("ul", { class: `diff ${kind}` }, list.map((g) => item(g, kind))) : el("p", { class: "hint" }, "None"));
    };
    section("Would appear", diff.appear, "appear");
    section("Would go", diff.go, "go");
    section("Would stay", diff.stay, "stay");
  };
})();
