// The tenantkit administration console: sign-in, the tenant, and the panels.

import { api, forget, hasToken, onSignedOut, Problem, refresh, request, useTokens } from "./api.js";
import { action, field, form, h, note } from "./dom.js";
import { BUILTIN_PANELS } from "./panels.js";

const BASE = document.body.dataset.base || "/console";
const view = document.getElementById("view");
const nav = document.getElementById("nav");
const navList = document.getElementById("nav-list");
const account = document.getElementById("account");
const main = document.getElementById("main");

let me = null;
let panels = [];
let flashText = "";

// -- signing in ------------------------------------------------------------------ //

function showSignIn(message, { focus = true } = {}) {
  me = null;
  nav.hidden = true;
  account.hidden = true;
  account.replaceChildren();
  navList.replaceChildren();
  const heading = h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in");
  const step = h("div", { class: "signin-step" });
  const sso = h("div", { class: "sso", hidden: true });
  const password = form(
    "Sign in with email and password",
    [
      field("Email", { name: "email", type: "email", required: true, autocomplete: "username" }),
      field("Password", { name: "password", type: "password", required: true, autocomplete: "current-password" }),
      field("Tenant (optional)", { name: "tenant", autocomplete: "organization", hint: "Slug or id; leave empty for your most recent one" }),
    ],
    "Sign in",
    async (data) => {
      const headers = data.tenant.trim() ? { "X-Tenant-ID": data.tenant.trim() } : {};
      const answer = await request("POST", "/auth/login", { email: data.email, password: data.password }, { headers, auth: false });
      if (answer && answer.mfa_required) {
        step.replaceChildren(secondFactor(answer));
        step.querySelector("input").focus();
        return;
      }
      useTokens(answer);
      await start();
    },
  );
  step.append(password);
  view.replaceChildren(
    h("section", { class: "signin card", "aria-labelledby": "signin-title" }, heading, message ? note(message) : null, step, sso),
  );
  offerSso(sso);
  if (focus) heading.focus();
}

function secondFactor(challenge) {
  const methods = challenge.methods || ["totp"];
  return form(
    "Second factor",
    [
      h("p", {}, "Enter the 6-digit code from your authenticator app", methods.includes("recovery_code") ? ", or one of your recovery codes." : "."),
      field("Code", { name: "code", required: true, autocomplete: "one-time-code", inputmode: "text" }),
    ],
    "Verify",
    async (data) => {
      const code = data.code.trim();
      const body = /^\d{6}$/.test(code) ? { mfa_token: challenge.mfa_token, code } : { mfa_token: challenge.mfa_token, recovery_code: code };
      const answer = await request("POST", "/auth/2fa/verify", body, { auth: false });
      useTokens(answer);
      await start();
    },
  );
}

async function offerSso(slot) {
  let providers;
  try {
    providers = await request("GET", "/auth/oidc/providers", undefined, { auth: false });
  } catch {
    return; // no federation on this server: no SSO buttons
  }
  const back = encodeURIComponent(BASE);
  const links = (providers && Array.isArray(providers.items) ? providers.items : []).map((provider) =>
    h("li", {}, h("a", { class: "button secondary", href: `${api.root}/auth/oidc/${encodeURIComponent(provider.name)}/authorize?redirect_to=${back}` }, `Sign in with ${provider.name}`)),
  );
  const organisation = form(
    "Sign in with your organisation's SSO",
    [field("Organisation (tenant slug)", { name: "slug", required: true, autocomplete: "organization" })],
    "Continue with SSO",
    async (data) => {
      const slug = data.slug.trim().toLowerCase();
      const url = `${api.root}/auth/sso/${encodeURIComponent(slug)}/authorize?redirect_to=${back}`;
      const probe = await fetch(url, { method: "GET", redirect: "manual", credentials: "same-origin" });
      if (probe.type !== "opaqueredirect" && !probe.ok) {
        let body = null;
        try {
          body = await probe.json();
        } catch {
          body = null;
        }
        throw new Problem(probe.status, body || { detail: "Single sign-on is not set up for that organisation." });
      }
      window.location.assign(url);
    },
    { buttonClass: "secondary" },
  );
  slot.replaceChildren(
    ...[h("h2", {}, "Single sign-on"), links.length ? h("ul", { class: "sso-links" }, links) : null, organisation].filter(Boolean),
  );
  slot.hidden = false;
}

// -- the signed-in shell ------------------------------------------------------------ //

function can(permission) {
  return !permission || (me && Array.isArray(me.permissions) && me.permissions.includes(permission));
}

async function loadTenants() {
  // The caller's memberships, to choose a tenant from (API keys have none to choose).
  if (me.api_key) return [];
  try {
    const page = await request("GET", "/auth/tenants");
    return Array.isArray(page.items) ? page.items : [];
  } catch {
    return null; // unknown: fall back to typing a slug
  }
}

function tenantControl(tenants) {
  if (tenants === null) {
    return field("Switch to tenant", { name: "tenant", required: true, autocomplete: "organization", placeholder: "slug or id" });
  }
  const options = tenants.map((item) => [item.slug, `${item.name} (${item.slug}) · ${item.role}${item.status === "active" ? "" : " · suspended"}`]);
  const current = tenants.find((item) => item.current);
  return field("Switch to tenant", { name: "tenant", options, value: current ? current.slug : undefined });
}

function renderAccount(tenants) {
  const who = me.api_key ? me.api_key.name : me.email;
  const tenantLabel = me.tenant ? `${me.tenant.name} (${me.tenant.slug})` : "";
  const parts = [
    h("p", { class: "who" }, h("span", { class: "email" }, who), " · ", h("span", { class: "tenant" }, tenantLabel), me.role ? ` · ${me.role}` : ""),
    me.impersonator ? h("p", { class: "impersonated", role: "note" }, `Impersonated by ${me.impersonator.email}`) : null,
    tenants !== null && tenants.length < 2 ? null : form(
      "Switch tenant",
      [tenantControl(tenants)],
      "Switch",
      async (data) => {
        useTokens(await request("POST", "/auth/switch-tenant", { tenant: data.tenant.trim() }));
        flashText = "";
        await start();
      },
      { class: "inline switch", buttonClass: "secondary" },
    ),
    action("Sign out", async () => {
      try {
        await request("POST", "/auth/logout");
      } finally {
        forget();
      }
    }, { class: "secondary signout" }),
  ];
  account.replaceChildren(...parts.filter(Boolean));
  account.hidden = false;
}

async function loadPluginPanels() {
  let listed = [];
  try {
    listed = await request("GET", `${BASE.slice(api.root.length)}/assets/panels.json`, undefined, { auth: false });
  } catch {
    listed = [];
  }
  return (listed || []).map((panel) => ({
    id: `plugin-${panel.id}`,
    title: panel.title,
    permission: panel.permission,
    render: async (container) => {
      const module = await import(`${BASE}/assets/panels/${encodeURIComponent(panel.id)}.js`);
      await module.render(container, api);
    },
  }));
}

function renderNav(active) {
  navList.replaceChildren(
    ...panels.map((panel) =>
      h("li", {}, h("a", { href: `#${panel.id}`, "aria-current": panel.id === active ? "page" : null }, panel.title)),
    ),
  );
  nav.hidden = false;
}

async function show(panelId, { focus = true } = {}) {
  const panel = panels.find((p) => p.id === panelId) || panels[0];
  if (!panel) {
    view.replaceChildren(h("h1", {}, "Nothing to manage"), note("Your role in this tenant gives you no administration rights."));
    return;
  }
  renderNav(panel.id);
  const heading = h("h1", { id: `title-${panel.id}`, tabindex: "-1" }, panel.title);
  const flash = h("p", { class: "flash", role: "status" }, flashText);
  flashText = "";
  const container = h("div", { class: "panel-body", id: `panel-${panel.id}` });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  view.replaceChildren(h("div", { class: "panel" }, heading, flash, error, container));
  if (focus) heading.focus();
  const ctx = {
    me,
    can,
    container,
    flash: (text) => {
      flashText = text;
    },
    announce: (text) => {
      flash.textContent = text;
    },
    rerender: () => show(panel.id, { focus: false }),
    signedOut: () => forget(),
  };
  try {
    await panel.render(container, ctx);
  } catch (problem) {
    if (!hasToken()) return;
    error.textContent = problem instanceof Problem ? problem.message : `This panel failed: ${problem.message || problem}`;
    if (problem instanceof Problem && String(problem.body.type || "").endsWith("mfa-enrollment-required")) {
      error.append(" ", h("a", { href: "#security" }, "Set up two-factor sign-in"));
    }
    error.hidden = false;
  }
  container.dataset.ready = "true"; // the panel has rendered (tests and plugins may wait on it)
  return container;
}

async function start({ focus = true } = {}) {
  try {
    me = await request("GET", "/auth/me");
  } catch (problem) {
    if (!hasToken()) return; // signed out meanwhile: the sign-in form is up
    showSignIn(problem.message);
    return;
  }
  renderAccount(await loadTenants());
  panels = [...BUILTIN_PANELS, ...(await loadPluginPanels())].filter((panel) => can(panel.permission));
  const wanted = window.location.hash.slice(1);
  await show(wanted, { focus });
}

window.addEventListener("hashchange", () => {
  const wanted = window.location.hash.slice(1);
  if (me && panels.some((panel) => panel.id === wanted)) show(wanted);
});

// The skip link moves the focus without touching the URL's fragment (which names the panel).
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

onSignedOut(() => showSignIn("You are signed out."));

async function boot() {
  document.getElementById("loading").remove();
  // On page load the focus stays at the top of the page (the skip link comes first).
  if (await refresh()) {
    await start({ focus: false });
  } else {
    showSignIn("", { focus: false });
  }
}

boot();
main.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.activeElement && document.activeElement.blur) document.activeElement.blur();
});
