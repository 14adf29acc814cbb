// Starts the console page: /console with an API key typed in, /console/panel with a panel token
// minted by the help-desk tool's backend (in the URL's fragment, which never reaches a server
// log; read once, kept in this tab, and removed from the address bar), prefilled from
// ?customer=…&issue=…&channel=….
"use strict";
(function () {
  const R = window.Rec;
  const { $ } = R;
  const panel = document.body.classList.contains("panel");
  if (!panel) {
    R.startConsole({ keyInput: $("apikey") });
    return;
  }
  const TOKEN = "recommender-panel-token";
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem(TOKEN, hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  R.auth.token = sessionStorage.getItem(TOKEN);

  function signIn(text) {
    $("panel-body").hidden = true;
    $("signin").hidden = false;
    $("signin-text").textContent = text;
  }
  function onAuthError(err) {
    sessionStorage.removeItem(TOKEN);
    if (err.code === "token_expired") {
      signIn("Your sign-in has expired. Close and reopen this panel from the ticket to sign in again.");
    } else {
      signIn("This panel could not sign you in (the sign-in token is not valid here). Reopen it from the ticket in your help-desk tool.");
    }
  }

  const query = new URLSearchParams(location.search);
  const prefill = { interaction: {} };
  const customer = query.get("customer"), issue = query.get("issue"), channel = query.get("channel");
  if (customer) prefill.customer = { id: customer };
  if (query.get("name")) prefill.customer = { ...(prefill.customer || {}), name: query.get("name") };
  if (issue) prefill.interaction.issue = issue;
  if (channel) prefill.interaction.channel = channel;
  if (query.get("vertical")) prefill.business = { vertical: query.get("vertical") };

  (async () => {
    if (!R.auth.token) {
      // Without a token only a server running without authentication answers.
      try { await R.api("GET", "/v1/business"); } catch (err) {
        signIn("This panel opens from your help-desk tool, which signs you in: open it from a ticket. " +
               "(No sign-in token was given.)");
        return;
      }
    }
    $("panel-body").hidden = false;
    const started = await R.startConsole({
      only: ["customer.id", "customer.name", "interaction.issue", "interaction.channel", "interaction.cost",
             "interaction.sentiment", "staff.level"],
      prefill, onAuthError,
    });
    if (!started.ready && !$("signin").hidden) return;
  })();
})();
