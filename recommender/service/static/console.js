// The agent console (/console) and the side panel (/console/panel, see panel.js): the form, the
// answer, the customer look-up that merges what the store knows, and the what-if pane.
"use strict";
(function () {
  const R = window.Rec;
  const { el, $ } = R;

  R.startConsole = async function (opts) {
    opts = opts || {};
    // The form may be sent before everything has loaded (a quick Enter): it then waits.
    let started;
    const ready = new Promise((resolve) => { started = resolve; });
    $("ctx-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      await ready;
      recommend();
    });
    let built = false;
    if (opts.keyInput) R.bindKey(opts.keyInput, () => { if (built) loadBusiness(); });
    const form = new R.Form($("form-fields"), { only: opts.only, keepClosed: !!opts.only });
    const answer = new R.Answer($("answer"));
    const error = $("error");
    const showError = (text) => { error.textContent = text || ""; };
    await form.build();
    built = true;
    const json = R.jsonToggle(form, $("json-toggle"), $("json-pane"), $("context"));
    if (opts.prefill) form.setValue(opts.prefill);
    let last = null; // {context, result, explanation}

    async function loadBusiness() {
      const vertical = form.read("business.vertical");
      const q = vertical ? `?vertical=${encodeURIComponent(vertical)}` : "";
      try {
        const [business, issues] = await Promise.all([R.api("GET", `/v1/business${q}`), R.api("GET", `/v1/issues${q}`)]);
        R.currency = business.currency;
        form.setVocabulary(issues.issues);
        const who = $("business-line");
        if (who) who.textContent = `Business ${business.business}${business.vertical ? ` (${R.words(business.vertical)})` : ""} · amounts in ${business.currency}`;
        for (const hint of document.querySelectorAll(".money-hint")) hint.textContent = `Amount in ${business.currency}`;
        return true;
      } catch (err) {
        if (opts.onAuthError && err.status === 401) opts.onAuthError(err);
        else if (err.status === 401 || err.status === 403) showError(R.authMessage(err));
        return false;
      }
    }
    const vertical = form.fields.get("business.vertical");
    if (vertical) vertical.input.addEventListener("change", loadBusiness);
    const signedIn = await loadBusiness();

    // -- recommend ----------------------------------------------------------------------------
    async function recommend(event) {
      if (event) event.preventDefault();
      showError();
      R.clearFieldErrors(document);
      let ctx;
      if (json.open()) {
        ctx = json.read();
        if (ctx === null) return;
      } else {
        if (!form.validate()) { showError("Some details need fixing: see the marked fields."); return; }
        ctx = form.value();
      }
      // The interaction happens now: its time makes the receipt replay exactly, and keeps the visit
      // this recommendation logs out of the history a later what-if reads.
      if (ctx.interaction && typeof ctx.interaction === "object" && !ctx.interaction.occurred_at) {
        ctx.interaction.occurred_at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      }
      const button = $("recommend");
      button.disabled = true;
      $("answer").setAttribute("aria-busy", "true");
      try {
        const [result, explanation] = await Promise.all([
          R.api("POST", "/v1/recommendations", ctx),
          R.api("POST", "/v1/explain", ctx).catch(() => null),
        ]);
        last = { context: ctx, result, explanation };
        answer.render(result, ctx);
        const asks = [...result.missing_inputs];
        for (const miss of (explanation && explanation.near_misses) || []) {
          if (miss.change !== "fixed" && !asks.includes(miss.failed.field)) asks.push(miss.failed.field);
        }
        const elsewhere = json.open() ? asks : form.markAsks(asks);
        if (elsewhere.length) {
          const misses = (explanation && explanation.near_misses) || [];
          $("answer").append(el("div", { class: "asks" }, el("h3", {}, "Asking these could change this answer"),
            el("ul", {}, elsewhere.map((path) => {
              const miss = misses.find((m) => m.failed.field === path);
              return el("li", {}, `${R.askPhrase(path)}`, miss ? ` (${miss.hint})` : "");
            }))));
        }
        renderWhatIfChoices(explanation);
        $("answer-title").focus();
      } catch (err) {
        if (opts.onAuthError && err.status === 401) { opts.onAuthError(err); return; }
        const rest = json.open() ? (err.errors || []).map((e) => `${e.field}: ${e.message}`) : form.showServerErrors(err);
        const auth = R.authMessage(err);
        if (auth && opts.keyInput) R.fieldError(opts.keyInput, auth);
        showError([auth || (rest.length || !(err.errors || []).length ? err.message : "Some details need fixing: see the marked fields."), ...rest].join("\n"));
        const bad = document.querySelector("[aria-invalid=true]");
        if (bad) bad.focus();
      } finally {
        button.disabled = false;
        $("answer").removeAttribute("aria-busy");
      }
    }

    // -- the customer look-up: what the store knows, merged into the form ----------------------
    const lookup = form.fields.get("customer.id");
    if (lookup && lookup.lookup) {
      lookup.lookup.addEventListener("click", async () => {
        const input = lookup.input;
        R.fieldError(input, "");
        const id = input.value.trim();
        const summary = $("customer-summary");
        if (!id) { R.fieldError(input, "Enter the customer's id first"); input.focus(); return; }
        try {
          const view = await R.api("GET", `/v1/customers/${encodeURIComponent(id)}?limit=1000`);
          const filled = form.merge(view);
          const last = view.visits[0];
          const parts = [`${view.visits.length} visit${view.visits.length === 1 ? "" : "s"} on record`];
          if (last) parts.push(`last: ${R.words(last.issue)} on ${last.occurred_at.slice(0, 10)}`);
          if (view.interests.length) parts.push(`interests: ${view.interests.join(", ")}`);
          if (Object.keys(view.preferences).length) parts.push(`preferences: ${Object.entries(view.preferences).map(([k, v]) => `${R.words(k)} ${v}`).join(", ")}`);
          if (view.goodwill_given) parts.push(`goodwill given lately: ${R.money(view.goodwill_given)}`);
          if (view.flagged_for_review) parts.push("flagged for review");
          summary.textContent = `Known customer: ${parts.join("; ")}. ${filled.length ? `Filled in: ${filled.join(", ")}` : "Nothing to fill in"}; what you typed is kept.`;
        } catch (err) {
          summary.textContent = "";
          if (err.status === 404) R.fieldError(input, err.code === "no_store" ? "No store on this server: nothing to look up" : "No customer with this id is known to this business");
          else R.fieldError(input, R.authMessage(err) || err.message);
          input.focus();
        }
      });
    }

    // -- what if --------------------------------------------------------------------------------
    const wiField = $("whatif-field");
    const wiBox = $("whatif-value-box");
    const wiOut = $("whatif-result");
    function valueControl() {
      const entry = form.fields.get(wiField.value);
      wiBox.replaceChildren();
      if (!entry) return;
      const label = el("label", { for: "whatif-value", text: `New value of ${entry.spec.label.toLowerCase()}` });
      let input;
      if (entry.schema.enum || entry.schema.type === "boolean") {
        const values = entry.schema.enum || ["true", "false"];
        input = el("select", { id: "whatif-value" }, el("option", { value: "" }, "Not known"),
                   values.map((v) => el("option", { value: v }, v === "true" ? "Yes" : v === "false" ? "No" : R.words(v))));
      } else if (entry.spec.scale) {
        input = el("select", { id: "whatif-value" }, el("option", { value: "" }, "Not asked"),
                   [["-1", "Very upset"], ["-0.5", "Upset"], ["0", "Neutral"], ["0.5", "Pleased"], ["1", "Delighted"]]
                     .map(([v, t]) => el("option", { value: v }, t)));
      } else {
        input = el("input", { id: "whatif-value", type: "text", autocomplete: "off" });
      }
      wiBox.append(label, input);
    }
    function renderWhatIfChoices(explanation) {
      $("whatif").hidden = false;
      const misses = (explanation && explanation.near_misses) || [];
      const suggested = (misses.find((m) => form.fields.has(m.failed.field)) || { failed: { field: "interaction.issue" } }).failed.field;
      const current = wiField.value || suggested;
      wiField.replaceChildren();
      for (const [path, entry] of form.fields) {
        if (entry.spec.kv || path === "customer.id") continue;
        wiField.append(el("option", { value: path, selected: path === current }, entry.spec.label));
      }
      valueControl();
      const ideas = $("whatif-ideas");
      ideas.replaceChildren();
      for (const miss of ((explanation && explanation.near_misses) || []).slice(0, 4)) {
        const f = miss.failed;
        const target = form.fields.has(f.field) ? f.field : null;
        if (!target || !["eq", "ge", "gt", "le", "lt"].includes(f.op)) continue;
        let v = f.value;
        if (f.op === "gt" && typeof v === "number") v = v + 1;
        if (f.op === "lt" && typeof v === "number") v = Math.max(0, v - 1);
        const text = `${form.fields.get(target).spec.label} = ${typeof v === "boolean" ? (v ? "yes" : "no") : v}`;
        const b = el("button", { type: "button", class: "secondary small idea" }, `Try ${text}`);
        b.addEventListener("click", () => runWhatIf(target, v, text));
        ideas.append(b);
      }
    }
    wiField.addEventListener("change", valueControl);
    async function runWhatIf(path, value, label) {
      if (!last) return;
      wiOut.replaceChildren(el("p", { class: "hint" }, "Asking the rules…"));
      try {
        const diff = await R.whatIf(last.context, path, value);
        R.renderWhatIf(wiOut, diff, label);
      } catch (err) {
        wiOut.replaceChildren(el("p", { class: "error", role: "alert", text: err.message }));
      }
    }
    $("whatif-run").addEventListener("click", () => {
      const entry = form.fields.get(wiField.value);
      const input = $("whatif-value");
      if (!entry || !input) return;
      R.fieldError(input, "");
      const raw = input.value.trim();
      let value;
      if (raw === "") value = undefined;
      else if (entry.schema.type === "boolean") value = raw === "true";
      else if (entry.schema.type === "number" || entry.schema.type === "integer" || entry.spec.scale) {
        value = Number(raw);
        const low = entry.schema.minimum ?? -Infinity, high = entry.schema.maximum ?? Infinity;
        if (!Number.isFinite(value) || value < low || value > high) {
          R.fieldError(input, `Enter a number${Number.isFinite(high) ? ` from ${low} to ${high}` : ""}`);
          input.focus();
          return;
        }
      } else if (entry.spec.list) value = raw.split(",").map((s) => s.trim()).filter(Boolean);
      else value = raw;
      const shown = raw === "" ? "not known" : input.tagName === "SELECT" ? input.selectedOptions[0].textContent : raw;
      runWhatIf(wiField.value, value, `${entry.spec.label.toLowerCase()} were ${shown}`);
    });

    started();
    document.body.dataset.ready = "true";
    return { form, answer, ready: signedIn };
  };
})();
