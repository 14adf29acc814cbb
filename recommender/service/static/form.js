// The context form: generated from the context's JSON schema (the service's OpenAPI document):
// each field's kind, range, pattern and choices come from the schema; this file only says which
// fields a help-desk agent fills, in which order, and how to name them. JSON stays available
// behind a toggle. Values are checked on the field before any request is sent.
"use strict";
(function () {
  const R = window.Rec;
  const { el } = R;

  // Which fields, in which group. `ask`: how a missing value is named ("asking ... could change this").
  R.FORM_GROUPS = [
    { legend: "Customer", fields: [
      { path: "customer.id", label: "Customer id", lookup: true, ask: "the customer's id" },
      { path: "customer.name", label: "Name", ask: "the customer's name" },
      { path: "customer.tenure_years", label: "Customer for (years)", ask: "the customer's tenure" },
      { path: "customer.lifetime_value", label: "Lifetime value", money: true, ask: "the customer's lifetime value" },
      { path: "customer.visits", label: "Visits so far (with this one)", ask: "how many visits the customer has made" },
      { path: "customer.tier", label: "Tier", ask: "the customer's tier" },
      { path: "customer.consents", label: "Consents given (comma-separated)", list: true, ask: "the customer's consents" },
    ] },
    { legend: "Interaction", fields: [
      { path: "interaction.issue", label: "Issue", vocab: true, required: true, ask: "what the issue is" },
      { path: "interaction.channel", label: "Channel", ask: "the channel" },
      { path: "interaction.cost", label: "Cost of the fix or fee", money: true, ask: "what the fix or fee costs" },
      { path: "interaction.amount", label: "Money at stake for the customer", money: true, ask: "how much money is at stake" },
      { path: "interaction.delay_days", label: "Delay (days)", ask: "how many days late it is" },
      { path: "interaction.wait_minutes", label: "Wait (minutes)", ask: "how long the customer waited" },
      { path: "interaction.repeat_count", label: "Earlier contacts about this issue", ask: "whether the customer contacted us about this before" },
      { path: "interaction.escalated", label: "Escalated or disputed", ask: "whether the case was escalated" },
      { path: "interaction.sentiment", label: "How does the customer feel?", scale: true, ask: "how the customer feels" },
      { path: "interaction.attributes", label: "Other details", kv: true, ask: "this detail" },
    ] },
    { legend: "You and the business", fields: [
      { path: "staff.level", label: "Your staff level", ask: "your staff level" },
      { path: "business.vertical", label: "Trade (vertical)", ask: "the business's trade" },
      { path: "business.store_id", label: "Store or branch", ask: "the store" },
    ] },
  ];
  const SCALE = [["", "Not asked"], ["-1", "Very upset"], ["-0.5", "Upset"], ["0", "Neutral"], ["0.5", "Pleased"],
                 ["1", "Delighted"]];
  // Derived facts a rule may ask for, and the inputs they come from.
  R.DERIVED = {
    "customer.loyal": ["customer.tenure_years", "customer.visits"],
    "customer.high_value": ["customer.lifetime_value"],
    "customer.returning": ["customer.visits"],
    "customer.is_new": ["customer.tenure_years"],
    "interaction.long_wait": ["interaction.wait_minutes"],
    "interaction.repeat_issue": ["interaction.repeat_count"],
    "interaction.severity": ["interaction.sentiment", "interaction.amount"],
  };

  // How a field a rule asked for is named when the form has no place for it.
  const ASK = {
    "customer.is_vip": "whether the customer is a VIP", "customer.visits_last_year": "how many times they came last year",
    "customer.life_events": "about life events (a move, a new baby, a wedding)", "customer.interests": "about their interests",
    "customer.last_visit_days": "when they last came", "customer.is_new": "whether they are a new customer",
    "interaction.budget": "the budget for this interaction", "interaction.occurred_at": "when it happened",
  };
  R.askPhrase = function (path) {
    if (ASK[path]) return `Ask ${ASK[path]}`;
    const m = path.match(/^customer\.(preferences|consents)\.?(.*)$/);
    if (m) return m[1] === "consents" ? "Ask for the customer's consent" : `Ask their preference: ${R.words(m[2])}`;
    return `Ask about ${R.words(path.split(".").slice(1).join(" "))}`;
  };

  const idOf = (path) => `f-${path.replace(/\./g, "-")}`;
  R.idOf = idOf;

  let schemaPromise = null;
  R.contextSchema = function () {
    if (!schemaPromise) {
      schemaPromise = fetch("/openapi.json").then((r) => r.json()).then((doc) => doc.components.schemas);
    }
    return schemaPromise;
  };

  function propSchema(schemas, path) {
    const [section, name] = path.split(".");
    const model = { customer: "Customer", interaction: "Interaction", staff: "Staff", business: "Business" }[section];
    const prop = ((schemas[model] || {}).properties || {})[name] || {};
    let s = prop;
    if (prop.anyOf) s = prop.anyOf.find((o) => o.type !== "null") || {};
    if (s.$ref) s = schemas[s.$ref.split("/").pop()] || {};
    return { ...s, description: prop.description || s.description, default: prop.default };
  }

  function deepGet(obj, path) {
    return path.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), obj);
  }
  function deepSet(obj, path, value) {
    const parts = path.split(".");
    let o = obj;
    for (const p of parts.slice(0, -1)) o = o[p] = o[p] && typeof o[p] === "object" ? o[p] : {};
    o[parts[parts.length - 1]] = value;
  }
  function deepDelete(obj, path) {
    const parts = path.split(".");
    const parent = deepGet(obj, parts.slice(0, -1).join("."));
    if (parent && typeof parent === "object") delete parent[parts[parts.length - 1]];
  }
  R.deepGet = deepGet;
  R.deepSet = deepSet;

  function scalar(text) {
    const t = text.trim();
    if (t === "true" || t === "yes") return true;
    if (t === "false" || t === "no") return false;
    if (t !== "" && /^-?\d+(\.\d+)?$/.test(t)) return Number(t);
    return t;
  }

  class Form {
    // root: where the fieldsets go; opts.only: paths shown up front (the rest under "More details").
    constructor(root, opts) {
      this.root = root;
      this.opts = opts || {};
      this.fields = new Map(); // path -> {spec, schema, input(s)}
      this.extra = {}; // what the JSON or the store gave that the form has no field for
      this.vocab = [];
    }

    async build() {
      const schemas = await R.contextSchema();
      this.schemas = schemas;
      this.root.replaceChildren();
      const only = this.opts.only;
      let more = null;
      for (const group of R.FORM_GROUPS) {
        const shown = only ? group.fields.filter((f) => only.includes(f.path)) : group.fields;
        const rest = only ? group.fields.filter((f) => !only.includes(f.path)) : [];
        if (shown.length) {
          const fs = el("fieldset", { class: "group" }, el("legend", { text: group.legend }));
          for (const spec of shown) fs.append(this.field(spec, propSchema(schemas, spec.path)));
          this.root.append(fs);
        }
        if (rest.length) {
          if (!more) {
            more = el("details", { class: "more" }, el("summary", { text: "More details" }));
            this.moreBox = more;
          }
          const fs = el("fieldset", { class: "group" }, el("legend", { text: group.legend }));
          for (const spec of rest) fs.append(this.field(spec, propSchema(schemas, spec.path)));
          more.append(fs);
        }
      }
      if (more) this.root.append(more);
    }

    field(spec, schema) {
      const id = idOf(spec.path);
      const wrap = el("div", { class: `field${spec.kv ? " wide" : ""}`, "data-path": spec.path });
      const entry = { spec, schema, wrap };
      const numeric = schema.type === "number" || schema.type === "integer";
      const hintText = spec.money ? `Amount in ${R.currency}`
        : numeric && schema.maximum !== undefined && schema.maximum <= 10000 ? `${schema.minimum ?? 0} to ${schema.maximum}` : "";
      if (spec.scale) {
        const fs = el("fieldset", { class: "scale", id }, el("legend", { text: spec.label }));
        for (const [value, text] of SCALE) {
          const rid = `${id}-${value === "" ? "none" : value.replace(".", "_").replace("-", "m")}`;
          const radio = el("input", { type: "radio", name: id, id: rid, value, checked: value === "" });
          fs.append(el("span", { class: "choice" }, radio, el("label", { for: rid, text })));
        }
        wrap.append(fs);
        entry.input = fs;
      } else if (spec.kv) {
        const list = el("div", { class: "kv-rows", id });
        const add = el("button", { type: "button", class: "secondary small", id: `${id}-add` }, "Add a detail");
        add.addEventListener("click", () => this.addRow(list).querySelector("input").focus());
        wrap.append(el("fieldset", { class: "kv" }, el("legend", { text: spec.label }), list, add));
        entry.input = list;
      } else {
        const label = el("label", { for: id, text: spec.label });
        let input;
        const enumValues = schema.enum;
        if (enumValues) {
          input = el("select", { id });
          if (schema.default === undefined || schema.default === null) input.append(el("option", { value: "" }, "Not known"));
          for (const v of enumValues) input.append(el("option", { value: v, selected: v === schema.default }, R.words(v)));
        } else if (schema.type === "boolean") {
          input = el("select", { id }, el("option", { value: "" }, "Not known"), el("option", { value: "true" }, "Yes"),
                     el("option", { value: "false" }, "No"));
        } else {
          const numeric = schema.type === "number" || schema.type === "integer";
          input = el("input", { id, type: "text", autocomplete: "off", spellcheck: "false",
                                inputmode: numeric ? (schema.type === "integer" ? "numeric" : "decimal") : null });
          if (spec.vocab) input.setAttribute("list", `${id}-list`);
        }
        wrap.append(label, input);
        if (hintText) {
          const hint = el("p", { class: spec.money ? "hint money-hint" : "hint", id: `${id}-hint` }, hintText);
          input.setAttribute("aria-describedby", hint.id);
          wrap.append(hint);
        }
        if (spec.vocab) {
          wrap.append(el("datalist", { id: `${id}-list` }));
          const family = el("p", { class: "hint", id: `${id}-family`, "aria-live": "polite" });
          input.setAttribute("aria-describedby", family.id);
          wrap.append(family);
          input.addEventListener("input", () => this.describeIssue());
        }
        if (spec.lookup) {
          const button = el("button", { type: "button", class: "secondary small", id: `${id}-lookup` }, "Look up");
          wrap.append(button);
          entry.lookup = button;
        }
        input.addEventListener("change", () => this.check(spec.path));
        entry.input = input;
      }
      this.fields.set(spec.path, entry);
      return wrap;
    }

    addRow(list, key, value) {
      const n = list.children.length + 1;
      const base = `${list.id}-${Date.now().toString(36)}${n}`;
      const k = el("input", { id: `${base}-k`, type: "text", autocomplete: "off", class: "kv-key", value: key ?? "" });
      const v = el("input", { id: `${base}-v`, type: "text", autocomplete: "off", class: "kv-value", value: value ?? "" });
      const remove = el("button", { type: "button", class: "secondary small", "aria-label": `Remove detail ${n}` }, "Remove");
      const row = el("div", { class: "kv-row field" },
                     el("label", { for: k.id, text: `Detail ${n} name` }), k,
                     el("label", { for: v.id, text: `Detail ${n} value` }), v, remove);
      remove.addEventListener("click", () => row.remove());
      list.append(row);
      return row;
    }

    setVocabulary(issues) {
      this.vocab = issues;
      const entry = this.fields.get("interaction.issue");
      if (!entry) return;
      const list = R.$(`${entry.input.id}-list`);
      list.replaceChildren();
      for (const issue of issues) {
        list.append(el("option", { value: issue.code }, `${R.words(issue.code)} (${R.words(issue.family)})`));
        for (const alias of issue.aliases) list.append(el("option", { value: alias }, `${R.words(alias)}: ${R.words(issue.code)}`));
      }
      this.describeIssue();
    }

    describeIssue() {
      const entry = this.fields.get("interaction.issue");
      if (!entry) return;
      const code = entry.input.value.trim();
      const found = this.vocab.find((i) => i.code === code || i.aliases.includes(code));
      const out = R.$(`${entry.input.id}-family`);
      if (!code) out.textContent = "Type to pick from the business's issues";
      else if (found) out.textContent = `${R.words(found.family)}${found.negative ? " (a negative experience)" : ""}: ${found.meaning}`;
      else out.textContent = this.vocab.length ? "Not in this business's vocabulary: only the other details will count" : "";
    }

    // -- reading and writing values ---------------------------------------------------------
    read(path) {
      const { spec, schema, input } = this.fields.get(path);
      if (spec.scale) {
        const checked = input.querySelector("input:checked");
        return checked && checked.value !== "" ? Number(checked.value) : undefined;
      }
      if (spec.kv) {
        const out = {};
        for (const row of input.querySelectorAll(".kv-row")) {
          const k = row.querySelector(".kv-key").value.trim();
          if (k) out[k] = scalar(row.querySelector(".kv-value").value);
        }
        return Object.keys(out).length ? out : undefined;
      }
      const raw = input.value.trim();
      if (raw === "") return undefined;
      if (spec.list) return raw.split(",").map((s) => s.trim()).filter(Boolean);
      if (schema.type === "boolean") return raw === "true";
      if (schema.type === "number" || schema.type === "integer") return Number(raw);
      return raw;
    }

    write(path, value) {
      const { spec, input } = this.fields.get(path);
      if (spec.scale) {
        const options = [...input.querySelectorAll("input")];
        const pick = options.find((o) => o.value !== "" && Number(o.value) === Number(value)) || options[0];
        if (value !== undefined && value !== null && pick === options[0]) {
          // a value between the steps: the nearest one
          let best = options[1];
          for (const o of options.slice(1)) if (Math.abs(Number(o.value) - value) < Math.abs(Number(best.value) - value)) best = o;
          best.checked = true;
        } else pick.checked = true;
        return;
      }
      if (spec.kv) {
        input.replaceChildren();
        for (const [k, v] of Object.entries(value || {})) this.addRow(input, k, String(v));
        return;
      }
      const { schema } = this.fields.get(path);
      if (value === undefined || value === null) {
        input.value = input.tagName === "SELECT" && schema.default !== undefined && schema.default !== null ? schema.default : "";
      } else if (Array.isArray(value)) input.value = value.join(", ");
      else input.value = String(value);
      if (spec.vocab) this.describeIssue();
    }

    value() {
      const ctx = JSON.parse(JSON.stringify(this.extra));
      for (const path of this.fields.keys()) {
        const v = this.read(path);
        if (v === undefined) deepDelete(ctx, path);
        else deepSet(ctx, path, v);
      }
      if (!ctx.interaction) ctx.interaction = {};
      if (ctx.interaction.issue === undefined) ctx.interaction.issue = "";
      for (const section of ["customer", "staff", "business"]) {
        if (ctx[section] && !Object.keys(ctx[section]).length) delete ctx[section];
      }
      return ctx;
    }

    setValue(ctx) {
      const copy = JSON.parse(JSON.stringify(ctx || {}));
      for (const path of this.fields.keys()) {
        this.write(path, deepGet(copy, path));
        deepDelete(copy, path);
      }
      this.extra = copy;
      this.renderExtra();
    }

    // What the context holds that the form has no field for (from the JSON or the store).
    renderExtra() {
      let box = this.root.querySelector(".extra");
      const lines = [];
      const walk = (obj, prefix) => {
        for (const [k, v] of Object.entries(obj || {})) {
          const path = prefix ? `${prefix}.${k}` : k;
          if (v && typeof v === "object" && !Array.isArray(v) && !path.endsWith("preferences")) walk(v, path);
          else if (!(Array.isArray(v) && !v.length) && v !== "") lines.push(`${path}: ${Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : v}`);
        }
      };
      walk(this.extra, "");
      if (!lines.length) { if (box) box.remove(); return; }
      if (!box) {
        box = el("div", { class: "extra" });
        this.root.append(box);
      }
      box.replaceChildren(el("p", { class: "hint" }, "Also sent (edit as JSON to change):"),
                          el("ul", {}, lines.map((l) => el("li", { text: l }))));
    }

    // -- checking values before any request --------------------------------------------------
    problem(path) {
      const { spec, schema, input } = this.fields.get(path);
      if (spec.scale) return null;
      if (spec.kv) {
        for (const row of input.querySelectorAll(".kv-row")) {
          const k = row.querySelector(".kv-key");
          if (k.value.trim() && !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(k.value.trim())) {
            return { input: k, message: "A name is a letter or _, then letters, digits or _ (no spaces)" };
          }
        }
        return null;
      }
      const raw = input.value.trim();
      if (raw === "") return spec.required ? { input, message: `Required: ${spec.ask}` } : null;
      if (schema.type === "number" || schema.type === "integer") {
        const n = Number(raw);
        const low = schema.minimum ?? schema.exclusiveMinimum ?? -Infinity;
        const high = schema.maximum ?? Infinity;
        if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw) || !Number.isFinite(n)) {
          return { input, message: `Enter a number${Number.isFinite(high) ? ` from ${low} to ${high}` : ""}` };
        }
        if (schema.type === "integer" && !Number.isInteger(n)) return { input, message: "Enter a whole number" };
        if (n < low || n > high) return { input, message: `Enter a number from ${low} to ${high}` };
      }
      if (schema.type === "string" || spec.list) {
        const items = spec.list ? raw.split(",").map((s) => s.trim()) : [raw];
        const itemSchema = spec.list ? (schema.items || {}) : schema;
        for (const item of items) {
          if (itemSchema.maxLength && item.length > itemSchema.maxLength) return { input, message: `At most ${itemSchema.maxLength} characters` };
          if (itemSchema.pattern && !new RegExp(itemSchema.pattern).test(item)) {
            return { input, message: "Letters, digits and _ . : - only, no spaces, starting with a letter or digit" };
          }
        }
      }
      return null;
    }

    check(path) {
      const { input } = this.fields.get(path);
      const p = this.problem(path);
      if (this.fields.get(path).spec.kv) {
        for (const k of input.querySelectorAll(".kv-key")) R.fieldError(k, "");
      } else R.fieldError(input, "");
      if (p) R.fieldError(p.input, p.message);
      return !p;
    }

    // True when every field is valid; otherwise marks each bad field and focuses the first.
    validate() {
      let first = null;
      for (const path of this.fields.keys()) {
        if (!this.check(path) && !first) first = this.fields.get(path);
      }
      if (first) {
        if (this.moreBox && this.moreBox.contains(first.wrap)) this.moreBox.open = true;
        const bad = first.wrap.querySelector("[aria-invalid=true]");
        (bad || first.input).focus();
      }
      return !first;
    }

    // A 4xx from the server: each error beside the field it names; the rest returned.
    showServerErrors(err) {
      const rest = [];
      for (const e of err.errors || []) {
        const path = String(e.field || "").replace(/^(body|path)\./, "").replace(/^path\.customer_id$/, "customer.id");
        const target = path === "customer_id" ? "customer.id" : path;
        const entry = this.fields.get(target) || this.fields.get(target.split(".").slice(0, 2).join("."));
        if (entry && entry.spec.kv) { // interaction.attributes.<name>: beside that detail's value
          const name = target.split(".")[2];
          const row = [...entry.input.querySelectorAll(".kv-row")].find((r) => r.querySelector(".kv-key").value.trim() === name);
          if (row) { R.fieldError(row.querySelector(".kv-value"), e.message); continue; }
        }
        if (entry && !entry.spec.scale && !entry.spec.kv) {
          if (this.moreBox && this.moreBox.contains(entry.wrap)) this.moreBox.open = true;
          R.fieldError(entry.input, e.message);
        } else rest.push(`${e.field}: ${e.message}`);
      }
      return rest;
    }

    // -- what a rule asked for ------------------------------------------------------------------
    clearAsks() {
      for (const wrap of this.root.querySelectorAll(".field.ask")) {
        wrap.classList.remove("ask");
        const note = wrap.querySelector(".ask-note");
        if (note) note.remove();
      }
    }

    // paths: fields whose value could change the answer. Returns those the form has no field for.
    markAsks(paths) {
      this.clearAsks();
      let hidden = 0;
      const elsewhere = [];
      const seen = new Set();
      for (const raw of paths) {
        const targets = this.fields.has(raw) ? [raw] : (R.DERIVED[raw] || [raw]);
        let shown = false;
        for (const path of targets) {
          const entry = this.fields.get(path) || this.fields.get(path.split(".").slice(0, 2).join("."));
          if (!entry || seen.has(entry.spec.path)) { shown = shown || (entry && seen.has(entry.spec.path)); continue; }
          if (this.read(entry.spec.path) !== undefined && !entry.spec.kv) continue; // already given
          seen.add(entry.spec.path);
          entry.wrap.classList.add("ask");
          entry.wrap.append(el("p", { class: "ask-note" }, `Asking ${entry.spec.ask} could change this.`));
          if (this.moreBox && this.moreBox.contains(entry.wrap)) {
            if (this.opts.keepClosed) hidden += 1;
            else this.moreBox.open = true;
          }
          shown = true;
        }
        if (!shown && !seen.has(raw)) elsewhere.push(raw);
      }
      if (this.moreBox) {
        this.moreBox.querySelector("summary").textContent = hidden
          ? `More details (${hidden} could change the answer)` : "More details";
      }
      return elsewhere;
    }

    // What the store knows about the customer, merged in: typed values are kept.
    merge(view) {
      const filled = [];
      const setIfEmpty = (path, value) => {
        if (value === undefined || value === null || !this.fields.has(path)) return;
        if (this.read(path) !== undefined) return;
        this.write(path, value);
        const entry = this.fields.get(path);
        entry.wrap.classList.add("merged");
        filled.push(entry.spec.label);
      };
      if (Array.isArray(view.visits)) setIfEmpty("customer.visits", view.visits.length + 1);
      setIfEmpty("customer.name", view.name);
      setIfEmpty("customer.tier", view.tier);
      setIfEmpty("customer.lifetime_value", view.lifetime_value);
      if (view.tenure_years !== undefined) setIfEmpty("customer.tenure_years", view.tenure_years);
      else if (view.tenure_since) {
        const years = (Date.now() - Date.parse(view.tenure_since)) / (365.25 * 86400e3);
        if (years >= 0) setIfEmpty("customer.tenure_years", Math.round(years * 10) / 10);
      }
      const issue = this.read("interaction.issue");
      if (issue && Array.isArray(view.visits)) {
        const earlier = view.visits.filter((v) => v.issue === issue).length;
        if (earlier) setIfEmpty("interaction.repeat_count", earlier);
      }
      this.extra.customer = this.extra.customer || {};
      const known = this.extra.customer;
      if (view.preferences && Object.keys(view.preferences).length) known.preferences = { ...view.preferences, ...(known.preferences || {}) };
      if (view.interests && view.interests.length) known.interests = [...new Set([...(known.interests || []), ...view.interests])];
      if (!Object.keys(known).length) delete this.extra.customer;
      this.renderExtra();
      return filled;
    }
  }
  R.Form = Form;

  // The JSON toggle: the form's context as JSON, edited and read back.
  R.jsonToggle = function (form, toggle, pane, area, onError) {
    const open = () => !pane.hidden;
    toggle.addEventListener("click", () => {
      if (open()) {
        const ctx = R.readJson(area);
        if (ctx === null) return;
        form.setValue(ctx);
        pane.hidden = true;
        toggle.setAttribute("aria-expanded", "false");
        toggle.textContent = "Edit as JSON";
      } else {
        area.value = JSON.stringify(form.value(), null, 2);
        R.fieldError(area, "");
        pane.hidden = false;
        toggle.setAttribute("aria-expanded", "true");
        toggle.textContent = "Back to the form";
        area.focus();
      }
    });
    return { open, read: () => (open() ? R.readJson(area) : form.value()) };
  };
  R.readJson = function (area) {
    try {
      const ctx = JSON.parse(area.value);
      if (!ctx || typeof ctx !== "object" || Array.isArray(ctx)) throw new Error("the context is a JSON object");
      R.fieldError(area, "");
      return ctx;
    } catch (err) {
      R.fieldError(area, `Not valid JSON: ${err.message}`);
      area.focus();
      return null;
    }
  };
})();
