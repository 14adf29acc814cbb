// The rules browser (read-only): packs, gestures and rules of the business, searchable and
// filtered by tier, category and plugin; each rule with its conditions and its reason.
"use strict";
(function () {
  const R = window.Rec;
  const { el, $ } = R;
  let data = null;

  function from(plugin) { return plugin ? `plugin ${plugin}` : "core"; }

  // A rule's conditions as the pack writes them: a test, a list (all of them), {all|any: [...]}, {not: ...}.
  function condition(node) {
    const group = (label, items) => el("div", { class: "cond-group" }, el("span", { class: "label" }, `${label}:`),
      el("ul", { class: "conditions" }, items.map((item) => el("li", {}, condition(item)))));
    if (typeof node === "string") return el("code", { text: node });
    if (Array.isArray(node)) return node.length === 1 ? condition(node[0]) : group("All of", node);
    if (node && typeof node === "object") {
      const keys = Object.keys(node);
      if (keys.length === 1 && (keys[0] === "all" || keys[0] === "any")) {
        const items = Array.isArray(node[keys[0]]) ? node[keys[0]] : [node[keys[0]]];
        return group(keys[0] === "all" ? "All of" : "Any of", items);
      }
      if (keys.length === 1 && keys[0] === "not") return el("div", { class: "cond-group" }, el("span", { class: "label" }, "Not:"), condition(node.not));
    }
    return el("code", { text: JSON.stringify(node) });
  }

  function matches(text, q) { return !q || text.toLowerCase().includes(q); }

  function render() {
    if (!data) return;
    const q = $("rule-search").value.trim().toLowerCase();
    const tier = $("filter-tier").value, category = $("filter-category").value, plugin = $("filter-plugin").value;
    const byId = new Map(data.gestures.map((g) => [g.id, g]));
    const gestureOk = (g) => (!tier || g.tier === tier) && (!category || g.category === category)
      && (!plugin || (plugin === "core" ? !g.plugin : g.plugin === plugin));
    const rules = data.rules.filter((r) => {
      const gs = r.gestures.map((id) => byId.get(id)).filter(Boolean);
      if (!gs.some(gestureOk)) return false;
      if (plugin && !(plugin === "core" ? !r.plugin : r.plugin === plugin)) return false;
      const text = [r.id, r.because, r.description || "", JSON.stringify(r.when), ...gs.map((g) => g.title)].join(" ");
      return matches(text, q);
    });
    const gestures = data.gestures.filter((g) => gestureOk(g) && matches([g.id, g.title, g.script, g.category].join(" "), q));
    $("shown").textContent = `Showing ${rules.length} of ${data.rules.length} rules and ${gestures.length} of ${data.gestures.length} gestures.`;
    $("rules").replaceChildren(...rules.map((r) => {
      const gs = r.gestures.map((id) => byId.get(id)).filter(Boolean);
      return el("article", { class: "rule-card", "data-rule": r.id, "aria-labelledby": `rule-${r.id}` },
        el("h3", { id: `rule-${r.id}`, text: gs.map((g) => g.title).join(" · ") || r.id }),
        el("p", { class: "because", text: r.because }),
        el("p", {}, gs.map((g) => R.tierChip(g.tier)), ` Rule ${r.id} · pack ${r.pack} (${from(r.plugin)}) · priority ${r.priority}`),
        el("div", { class: "when" }, el("span", { class: "label" }, "When:"), condition(r.when)));
    }));
    $("gestures").replaceChildren(...gestures.map((g) => el("tr", { "data-gesture": g.id },
      el("td", {}, el("strong", { text: g.title }), el("br"), el("code", { text: g.id })),
      el("td", {}, R.tierChip(g.tier)), el("td", { text: R.words(g.category) }), el("td", { text: g.cost }),
      el("td", { text: g.authority }), el("td", { class: "script-cell", text: g.script }))));
  }

  async function load() {
    $("error").textContent = "";
    const vertical = $("vertical").value.trim();
    try {
      data = await R.api("GET", `/v1/rules${vertical ? `?vertical=${encodeURIComponent(vertical)}` : ""}`);
    } catch (err) {
      if (err.errors && err.errors.length) R.fieldError($("vertical"), err.errors[0].message);
      $("error").textContent = R.authMessage(err) || err.message;
      return;
    }
    R.fieldError($("vertical"), "");
    $("summary").textContent = `Business ${data.business}${data.vertical ? ` (${R.words(data.vertical)})` : ""}: ` +
      `${data.packs.length} packs, ${data.rules.length} rules, ${data.gestures.length} gestures · ruleset ${data.ruleset_version}`;
    $("packs").replaceChildren(...data.packs.map((p) => el("tr", {}, el("td", {}, el("strong", { text: p.name }), ` v${p.version}`),
      el("td", { text: from(p.plugin) }), el("td", { text: p.gestures }), el("td", { text: p.rules }),
      el("td", { text: p.description.trim() }))));
    const fill = (select, values, label) => {
      const keep = select.value;
      select.replaceChildren(select.options[0], ...values.map((v) => el("option", { value: v, selected: v === keep }, label(v))));
    };
    fill($("filter-category"), [...new Set(data.gestures.map((g) => g.category))].sort(), R.words);
    const plugins = [...new Set(data.gestures.map((g) => g.plugin).filter(Boolean))].sort();
    const pluginSelect = $("filter-plugin");
    const keep = pluginSelect.value;
    pluginSelect.replaceChildren(el("option", { value: "" }, "Everywhere"), el("option", { value: "core", selected: keep === "core" }, "The core packs"),
      ...plugins.map((p) => el("option", { value: p, selected: p === keep }, `Plugin ${p}`)));
    render();
  }
  R.bindKey($("apikey"), load);
  $("load").addEventListener("click", load);
  $("vertical").addEventListener("change", load);
  for (const id of ["rule-search", "filter-tier", "filter-category", "filter-plugin"]) {
    $(id).addEventListener(id === "rule-search" ? "input" : "change", render);
  }
  load();
})();
