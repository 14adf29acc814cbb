// Shared by every console page: the API call (with the key, or the side panel's token), building
// elements (data is always inserted as text, never as HTML), money in the business's currency,
// tier labels, and errors shown next to the field they name.
"use strict";
(function () {
  const R = (window.Rec = {});
  R.$ = (id) => document.getElementById(id);

  // el("div", {class: "x", "data-a": 1}, child, "text", ...): attributes are set as attributes,
  // strings become text nodes.
  R.el = function (tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
    return node;
  };

  // The SVG namespace, read from the browser (so no page or script names an outside address).
  R.SVG_NS = (() => {
    const t = document.createElement("template");
    t.innerHTML = "<svg></svg>";
    return t.content.firstChild.namespaceURI;
  })();
  R.svg = function (tag, attrs, ...children) {
    const node = document.createElementNS(R.SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  };

  // -- who is calling: an API key typed in (kept in this tab only) or a panel token -----------
  R.auth = {
    keyInput: null,
    token: null,
    headers() {
      if (this.token) return { Authorization: `Bearer ${this.token}` };
      const key = this.keyInput ? this.keyInput.value.trim() : sessionStorage.getItem("recommender-key") || "";
      return key ? { "X-API-Key": key } : {};
    },
  };
  R.bindKey = function (input, onChange) {
    R.auth.keyInput = input;
    if (!input.value) input.value = sessionStorage.getItem("recommender-key") || "";
    let applied = input.value.trim();
    input.addEventListener("change", () => {
      const key = input.value.trim();
      if (key === applied) return; // a second "change" (on leaving the field) changes nothing
      applied = key;
      sessionStorage.setItem("recommender-key", key);
      if (onChange) onChange();
    });
  };

  class ApiError extends Error {
    constructor(status, data) {
      super(data.message || data.detail || `HTTP ${status}`);
      this.status = status;
      this.code = data.error || "";
      this.errors = Array.isArray(data.errors) ? data.errors : [];
    }
  }
  R.ApiError = ApiError;

  R.api = async function (method, path, body, extraHeaders) {
    const headers = { Accept: "application/json", ...R.auth.headers(), ...(extraHeaders || {}) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ApiError(0, { message: "The server cannot be reached. Check the connection and try again." });
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  };

  // A sign-in problem, said for people.
  R.authMessage = function (err) {
    if (!(err instanceof ApiError)) return null;
    if (err.status === 401) return err.code === "token_expired" ? err.message : "Sign in: enter a valid API key.";
    if (err.status === 403) return err.message;
    return null;
  };

  // -- words and numbers ------------------------------------------------------------------------
  R.TIERS = {
    recover: { label: "Recover", help: "puts a bad experience right" },
    meet: { label: "Baseline", help: "what a good experience includes" },
    exceed: { label: "Extra", help: "an unexpected extra" },
  };
  R.tierChip = (tier) => R.el("span", { class: `chip tier-${tier}`, title: (R.TIERS[tier] || {}).help },
                              (R.TIERS[tier] || { label: tier }).label);
  R.BANDS = ["none", "minor", "moderate", "major", "critical"];
  R.currency = "USD";
  R.money = function (value, currency) {
    if (value === null || value === undefined) return "cost unknown";
    const cur = currency || R.currency;
    try {
      return new Intl.NumberFormat("en", { style: "currency", currency: cur }).format(value);
    } catch (_) {
      return `${Number(value).toFixed(2)} ${cur}`;
    }
  };
  R.percent = (v) => (v === null || v === undefined ? "—" : `${Math.round(v * 100)}%`);
  R.words = (id) => String(id || "").replace(/[_.:-]+/g, " ");
  R.firstSentence = function (text) {
    const s = String(text || "").trim();
    const m = s.match(/^(.+?[.!?])(\s|$)/);
    return m ? m[1] : s;
  };

  // -- errors next to fields ------------------------------------------------------------------
  // A form registers its fields by context path; an error naming one is shown beside it.
  R.fieldError = function (input, message) {
    const wrap = input.closest(".field") || input.parentElement;
    let note = wrap.querySelector(".field-error");
    if (!note) {
      note = R.el("p", { class: "field-error", id: `${input.id}-error` });
      wrap.append(note);
    }
    note.textContent = message || "";
    if (message) {
      input.setAttribute("aria-invalid", "true");
      const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (!described.includes(note.id)) described.push(note.id);
      input.setAttribute("aria-describedby", described.join(" "));
      wrap.classList.add("invalid");
    } else {
      input.removeAttribute("aria-invalid");
      wrap.classList.remove("invalid");
    }
  };
  R.clearFieldErrors = function (root) {
    for (const input of root.querySelectorAll("[aria-invalid=true]")) R.fieldError(input, "");
  };

  R.showStatus = function (node, text, kind) {
    node.textContent = text || "";
    node.className = `status${kind ? " " + kind : ""}`;
  };

  R.copy = async function (text, status) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      const area = R.el("textarea", { "aria-hidden": "true", class: "offscreen", tabindex: "-1" });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    if (status) R.showStatus(status, "Copied", "ok");
  };
})();
