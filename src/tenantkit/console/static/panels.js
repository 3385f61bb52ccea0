// The console's built-in panels. Each shows only what the signed-in user's
// permissions (GET /auth/me) allow; the API still decides every request.

import { api } from "./api.js";
import { action, confirmAction, field, form, h, run, when } from "./dom.js";

const enc = encodeURIComponent;

function section(title, ...children) {
  const id = `h-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), children);
}

function empty(text) {
  return h("p", { class: "empty" }, text);
}

function list(label, items, render) {
  if (!items.length) return empty(`No ${label.toLowerCase()}.`);
  return h("ul", { class: "rows", "aria-label": label }, items.map((item) => h("li", { class: "row" }, render(item))));
}

function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value === null || value === undefined || value === "" ? "—" : value)]),
  );
}

function csv(text) {
  return String(text || "")
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
}

async function roleNames(ctx) {
  if (ctx.can("roles.manage")) {
    const roles = await api.get("/roles");
    return roles.items.map((role) => role.name);
  }
  return ["USER", "ADMIN"];
}

// -- members and invitations ------------------------------------------------ //

async function members(container, ctx) {
  const roles = await roleNames(ctx);
  const page = await api.get("/users");
  if (ctx.can("users.invite")) {
    container.append(
      section(
        "Invite someone",
        form(
          "Invite a member",
          [
            field("Email", { name: "email", type: "email", required: true, autocomplete: "off" }),
            field("Role", { name: "role", options: roles, value: "USER" }),
          ],
          "Send invitation",
          async (data) => {
            await api.post("/users/invitations", { email: data.email, role: data.role });
            ctx.flash(`Invitation sent to ${data.email}.`);
            await ctx.rerender();
          },
        ),
      ),
    );
  }
  container.append(
    section(
      "Members",
      list("Members", page.items, (member) => [
        h("p", { class: "row-title" }, member.email, member.id === ctx.me.id ? h("span", { class: "badge" }, "you") : null),
        facts([
          ["Role", member.role],
          ["Joined", when(member.joined_at)],
        ]),
        h(
          "div",
          { class: "row-actions" },
          ctx.can("users.update")
            ? form(
                `Role of ${member.email}`,
                [
                  field(`Role of ${member.email}`, {
                    name: "role",
                    options: roles.includes(member.role) ? roles : [...roles, member.role],
                    value: member.role,
                  }),
                ],
                "Change role",
                async (data) => {
                  await api.patch(`/users/${enc(member.id)}/role`, { role: data.role });
                  ctx.flash(`${member.email} is now ${data.role}.`);
                  await ctx.rerender();
                },
                { class: "inline", buttonClass: "secondary" },
              )
            : null,
          ctx.can("users.delete") && member.id !== ctx.me.id
            ? confirmAction(
                "Remove",
                "Confirm removal",
                async () => {
                  await api.del(`/users/${enc(member.id)}`);
                  ctx.flash(`${member.email} was removed.`);
                  await ctx.rerender();
                },
                { class: "danger", "aria-label": `Remove ${member.email}` },
              )
            : null,
        ),
      ]),
    ),
  );
  if (ctx.can("users.invite")) {
    const pending = await api.get("/users/invitations");
    container.append(
      section(
        "Pending invitations",
        list("Pending invitations", pending.items, (invitation) => [
          h("p", { class: "row-title" }, invitation.email),
          facts([
            ["Role", invitation.role],
            ["Sent", when(invitation.created_at)],
            ["Expires", when(invitation.expires_at)],
          ]),
          h(
            "div",
            { class: "row-actions" },
            action(
              "Revoke",
              async () => {
                await api.del(`/users/invitations/${enc(invitation.id)}`);
                ctx.flash(`The invitation of ${invitation.email} was revoked.`);
                await ctx.rerender();
              },
              { class: "danger", "aria-label": `Revoke the invitation of ${invitation.email}` },
            ),
          ),
        ]),
      ),
    );
  }
}

// -- roles -------------------------------------------------------------------- //

async function roles(container, ctx) {
  const page = await api.get("/roles");
  const hint = "Comma-separated permission codes or wildcards, such as products.read, products.*";
  container.append(
    section(
      "New role",
      form(
        "Create a role",
        [
          field("Name", { name: "name", required: true, autocomplete: "off" }),
          field("Description", { name: "description" }),
          field("Permissions", { name: "permissions", hint }),
        ],
        "Create role",
        async (data) => {
          await api.post("/roles", { name: data.name, description: data.description, permissions: csv(data.permissions) });
          ctx.flash(`Role ${data.name} created.`);
          await ctx.rerender();
        },
      ),
    ),
    section(
      "Roles",
      list("Roles", page.items, (role) => [
        h("p", { class: "row-title" }, role.name, role.builtin ? h("span", { class: "badge" }, "built in") : null),
        role.description ? h("p", {}, role.description) : null,
        h(
          "details",
          {},
          h("summary", {}, `${role.permissions.length} permissions`),
          h("p", { class: "codes" }, role.permissions.join(", ") || "none"),
        ),
        role.builtin
          ? null
          : h(
              "div",
              { class: "row-actions" },
              form(
                `Edit ${role.name}`,
                [
                  field(`Description of ${role.name}`, { name: "description", value: role.description }),
                  field(`Permissions of ${role.name}`, { name: "permissions", value: role.permissions.join(", "), hint }),
                ],
                "Save",
                async (data) => {
                  await api.patch(`/roles/${enc(role.name)}`, { description: data.description, permissions: csv(data.permissions) });
                  ctx.flash(`Role ${role.name} saved.`);
                  await ctx.rerender();
                },
                { buttonClass: "secondary" },
              ),
              confirmAction(
                "Delete",
                "Confirm deletion",
                async () => {
                  await api.del(`/roles/${enc(role.name)}`);
                  ctx.flash(`Role ${role.name} deleted.`);
                  await ctx.rerender();
                },
                { class: "danger", "aria-label": `Delete role ${role.name}` },
              ),
            ),
      ]),
    ),
  );
}

// -- sessions ------------------------------------------------------------------ //

async function sessions(container, ctx) {
  const page = await api.get("/auth/sessions");
  container.append(
    section(
      "Signed-in devices",
      list("Sessions", page.items, (item) => [
        h("p", { class: "row-title" }, item.user_agent || "Unknown device", item.current ? h("span", { class: "badge" }, "this device") : null),
        facts([
          ["Address", item.ip],
          ["Signed in", when(item.created_at)],
          ["Last used", when(item.last_used_at)],
          item.impersonated_by ? ["Impersonated by", item.impersonated_by.email] : null,
        ]),
        h(
          "div",
          { class: "row-actions" },
          action(
            "Sign out",
            async () => {
              await api.del(`/auth/sessions/${enc(item.id)}`);
              if (item.current) {
                ctx.signedOut();
                return;
              }
              ctx.flash("That device is signed out.");
              await ctx.rerender();
            },
            { class: "danger", "aria-label": `Sign out ${item.current ? "this device" : `${item.user_agent || "device"} (${item.ip || "unknown address"}), ${when(item.last_used_at)}`}` },
          ),
        ),
      ]),
    ),
  );
}

// -- two-factor sign-in ---------------------------------------------------------- //

async function security(container, ctx) {
  const slot = h("div", { class: "enrolment" });
  const start = action(
    "Set up an authenticator app",
    async () => {
      const setup = await api.post("/auth/2fa/totp/setup");
      const picture = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(setup.qr_svg)}`;
      const codes = h("div", { class: "once-slot" });
      slot.replaceChildren(
        h("p", {}, "Scan this code with your authenticator app, or type the secret into it, then enter the 6-digit code it shows."),
        h("img", { src: picture, alt: "QR code of the authenticator secret", class: "qr", width: "200", height: "200" }),
        copyable("Secret", setup.secret),
        form(
          "Confirm the authenticator app",
          [field("Code from the app", { name: "code", required: true, autocomplete: "one-time-code", inputmode: "numeric" })],
          "Turn on",
          async (data) => {
            const confirmed = await api.post("/auth/2fa/totp/confirm", { code: data.code.trim() });
            codes.replaceChildren(
              h("div", { class: "once" },
                h("h3", {}, "Recovery codes: shown once"),
                h("p", {}, "Each code signs you in once if you lose the app. Keep them somewhere safe."),
                h("ul", { class: "codes-list", "aria-label": "Recovery codes" }, confirmed.recovery_codes.map((code) => h("li", {}, h("code", {}, code)))),
              ),
            );
            ctx.announce("Two-factor sign-in is on.");
          },
        ),
        codes,
      );
      slot.querySelector("input[name=code]").focus();
    },
    { class: "secondary" },
  );
  container.append(
    section(
      "Authenticator app",
      h("p", {}, "With two-factor sign-in on, signing in asks for a code from your authenticator app after the password."),
      h("div", { class: "actions" }, start),
      slot,
    ),
    section(
      "Turn two-factor sign-in off",
      form(
        "Turn two-factor sign-in off",
        [field("Current code or password", { name: "proof", type: "password", required: true, autocomplete: "off" })],
        "Turn off",
        async (data) => {
          const proof = data.proof.trim();
          await api.send("DELETE", "/auth/2fa/totp", /^\d{6}$/.test(proof) ? { code: proof } : { password: data.proof });
          ctx.flash("Two-factor sign-in is off.");
          await ctx.rerender();
        },
        { buttonClass: "danger" },
      ),
    ),
  );
}

// -- API keys ------------------------------------------------------------------ //

function copyable(label, value) {
  const id = `secret-${Math.random().toString(36).slice(2)}`;
  const input = h("input", { id, readonly: true, value, class: "secret", spellcheck: "false", autocomplete: "off" });
  const status = h("span", { class: "note", role: "status" });
  const copy = h("button", { type: "button", class: "secondary" }, "Copy");
  copy.addEventListener("click", async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(value);
      status.textContent = "Copied.";
    } catch {
      status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  });
  return h("div", { class: "field once" }, h("label", { for: id }, label), h("div", { class: "inline-group" }, input, copy), status);
}

async function apiKeys(container, ctx) {
  const page = await api.get("/api-keys");
  const shown = h("div", { class: "once-slot" });
  const scopes = ctx.me.permissions.map((code) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "scopes", value: code }), code),
  );
  container.append(
    section(
      "New API key",
      form(
        "Create an API key",
        [
          field("Name", { name: "name", required: true, autocomplete: "off" }),
          h("fieldset", { class: "checks" }, h("legend", {}, "Scopes"), h("p", { class: "field-error", id: "scopes-error", hidden: true }), scopes),
          field("Expires in days (optional)", { name: "expires_in_days", type: "number", min: "1", max: "3650", inputmode: "numeric" }),
        ],
        "Create key",
        async (data) => {
          const body = { name: data.name, scopes: data.scopes || [] };
          if (data.expires_in_days) body.expires_in_days = Number(data.expires_in_days);
          const created = await api.post("/api-keys", body);
          const fresh = await ctx.rerender();
          const slot = fresh && fresh.querySelector(".once-slot");
          if (slot) {
            slot.replaceChildren(
              copyable(`Key ${created.name}: shown once, copy it now`, created.key),
            );
            slot.querySelector("input").focus();
          }
        },
      ),
      shown,
    ),
    section(
      "API keys",
      list("API keys", page.items, (key) => [
        h("p", { class: "row-title" }, key.name),
        facts([
          ["Prefix", key.prefix],
          ["Scopes", key.scopes.join(", ")],
          ["Created", when(key.created_at)],
          ["Expires", key.expires_at ? when(key.expires_at) : "never"],
          ["Last used", key.last_used_at ? when(key.last_used_at) : "never"],
        ]),
        h(
          "div",
          { class: "row-actions" },
          confirmAction(
            "Revoke",
            "Confirm revocation",
            async () => {
              await api.del(`/api-keys/${enc(key.id)}`);
              ctx.flash(`Key ${key.name} revoked.`);
              await ctx.rerender();
            },
            { class: "danger", "aria-label": `Revoke key ${key.name}` },
          ),
        ),
      ]),
    ),
  );
  const scopesError = container.querySelector("#scopes-error");
  if (scopesError) {
    // 422 errors name `scopes`: the checkboxes share this slot.
    for (const box of container.querySelectorAll("input[name=scopes]")) box.setAttribute("aria-describedby", "scopes-error");
  }
}

// -- webhooks ------------------------------------------------------------------ //

async function deliveries(slot, endpoint, ctx) {
  const page = await api.get(`/webhooks/${enc(endpoint.id)}/deliveries`);
  slot.replaceChildren(
    h("h3", {}, "Recent deliveries"),
    list("Deliveries", page.items, (delivery) => [
      h("p", { class: "row-title" }, delivery.event_type, h("span", { class: `badge status-${delivery.status}` }, delivery.status)),
      facts([
        ["Attempts", String(delivery.attempts)],
        ["Last answer", delivery.last_status_code ? String(delivery.last_status_code) : delivery.last_error],
        ["Created", when(delivery.created_at)],
        ["Delivered", when(delivery.delivered_at)],
      ]),
      delivery.status === "dead"
        ? action(
            "Retry",
            async () => {
              await api.post(`/webhooks/deliveries/${enc(delivery.id)}/requeue`);
              await deliveries(slot, endpoint, ctx);
            },
            { class: "secondary", "aria-label": `Retry delivery ${delivery.event_type}` },
          )
        : null,
    ]),
  );
}

async function webhooks(container, ctx) {
  const page = await api.get("/webhooks");
  const shown = h("div", { class: "once-slot" });
  container.append(
    section(
      "New endpoint",
      form(
        "Add a webhook endpoint",
        [
          field("URL", { name: "url", type: "url", required: true, placeholder: "https://example.com/hooks" }),
          field("Events", { name: "events", hint: "Comma-separated: order.created, inventory.*, or *", value: "*" }),
          field("Description", { name: "description" }),
        ],
        "Add endpoint",
        async (data) => {
          const created = await api.post("/webhooks", { url: data.url, events: csv(data.events), description: data.description });
          const fresh = await ctx.rerender();
          const slot = fresh && fresh.querySelector(".once-slot");
          if (slot) slot.replaceChildren(copyable("Signing secret: shown once, copy it now", created.secret));
        },
      ),
      shown,
    ),
    section(
      "Endpoints",
      list("Webhook endpoints", page.items, (endpoint) => {
        const slot = h("div", { class: "deliveries" });
        return [
          h("p", { class: "row-title url" }, endpoint.url),
          facts([
            ["Events", endpoint.events.join(", ")],
            ["Description", endpoint.description],
            ["Active", endpoint.active ? "yes" : "no"],
          ]),
          h(
            "div",
            { class: "row-actions" },
            action("Show deliveries", () => deliveries(slot, endpoint, ctx), { class: "secondary", "aria-label": `Show deliveries of ${endpoint.url}` }),
            confirmAction(
              "Delete",
              "Confirm deletion",
              async () => {
                await api.del(`/webhooks/${enc(endpoint.id)}`);
                ctx.flash("Endpoint deleted.");
                await ctx.rerender();
              },
              { class: "danger", "aria-label": `Delete endpoint ${endpoint.url}` },
            ),
          ),
          slot,
        ];
      }),
    ),
  );
}

// -- dead letters --------------------------------------------------------------- //

async function deadLetters(container, ctx) {
  const rows = h("div", {});
  const more = h("div", { class: "actions" });
  async function load(cursor) {
    const page = await api.get(`/jobs/dead-letters?limit=50${cursor ? `&cursor=${enc(cursor)}` : ""}`);
    rows.append(
      list("Dead letters", page.items, (letter) => [
        h("p", { class: "row-title" }, letter.task_name, letter.requeued_at ? h("span", { class: "badge" }, "requeued") : null),
        facts([
          ["Error", letter.error],
          ["Attempts", String(letter.attempts)],
          ["Failed", when(letter.created_at)],
        ]),
        letter.requeued_at
          ? null
          : action(
              "Requeue",
              async () => {
                await api.post(`/jobs/dead-letters/${enc(letter.id)}/requeue`);
                ctx.flash(`${letter.task_name} requeued.`);
                await ctx.rerender();
              },
              { class: "secondary", "aria-label": `Requeue ${letter.task_name}` },
            ),
      ]),
    );
    more.replaceChildren(page.next_cursor ? action("Older dead letters", () => load(page.next_cursor), { class: "secondary" }) : "");
  }
  container.append(section("Dead letters", rows, more));
  await load(null);
}

// -- audit log ---------------------------------------------------------------- //

function isoOrEmpty(local) {
  if (!local) return "";
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? local : date.toISOString();
}

async function audit(container, ctx) {
  const results = h("div", { class: "audit-results" });
  const more = h("div", { class: "actions" });
  let filters = {};

  async function load(cursor, target) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
    query.set("limit", "25");
    if (cursor) query.set("cursor", cursor);
    const page = await api.get(`/audit?${query}`);
    if (!cursor) results.replaceChildren();
    results.append(
      page.items.length || cursor
        ? h(
            "ol",
            { class: "rows audit", "aria-label": "Audit events" },
            page.items.map((event) =>
              h(
                "li",
                { class: "row" },
                h("p", { class: "row-title" }, h("code", {}, event.action)),
                facts([
                  ["When", when(event.created_at)],
                  ["Actor", event.actor_id],
                  ["Target", event.target],
                  ["Address", event.ip],
                ]),
              ),
            ),
          )
        : empty("No events match."),
    );
    more.replaceChildren(
      page.next_cursor ? action("Older events", (button) => load(page.next_cursor, button), { class: "secondary" }) : "",
    );
    return target;
  }

  const filterForm = form(
    "Filter the audit log",
    [
      h(
        "div",
        { class: "grid" },
        field("Action", { name: "action", placeholder: "role.created", autocomplete: "off" }),
        field("Actor (user id)", { name: "actor_id", autocomplete: "off" }),
        field("Since", { name: "since", type: "datetime-local" }),
        field("Until", { name: "until", type: "datetime-local" }),
      ),
    ],
    "Apply filters",
    async (data) => {
      filters = { action: data.action.trim(), actor_id: data.actor_id.trim(), since: isoOrEmpty(data.since), until: isoOrEmpty(data.until) };
      await load(null);
    },
    { buttonClass: "secondary" },
  );
  container.append(section("Filters", filterForm), section("Events, newest first", results, more));
  await run(filterForm, () => load(null));
}

// -- platform: tenants ---------------------------------------------------------- //

async function tenants(container, ctx) {
  const page = await api.get("/admin/tenants");
  container.append(
    section(
      "Tenants",
      list("Tenants", page.items, (tenant) => [
        h("p", { class: "row-title" }, tenant.name, h("span", { class: `badge status-${tenant.status}` }, tenant.status)),
        facts([
          ["Slug", tenant.slug],
          ["Created", when(tenant.created_at)],
        ]),
        h(
          "div",
          { class: "row-actions" },
          action(
            tenant.status === "suspended" ? "Resume" : "Suspend",
            async () => {
              const status = tenant.status === "suspended" ? "active" : "suspended";
              await api.patch(`/admin/tenants/${enc(tenant.id)}`, { status });
              ctx.flash(`${tenant.name} is now ${status}.`);
              await ctx.rerender();
            },
            { class: tenant.status === "suspended" ? "secondary" : "danger", "aria-label": `${tenant.status === "suspended" ? "Resume" : "Suspend"} ${tenant.name}` },
          ),
        ),
      ]),
    ),
  );
}

/** The built-in panels, in navigation order. `permission` hides a panel from those without it. */
export const BUILTIN_PANELS = [
  { id: "members", title: "Members", permission: "users.read", render: members },
  { id: "roles", title: "Roles", permission: "roles.manage", render: roles },
  { id: "sessions", title: "My sessions", permission: null, render: sessions },
  { id: "security", title: "Two-factor sign-in", permission: null, render: security },
  { id: "api-keys", title: "API keys", permission: "api_keys.manage", render: apiKeys },
  { id: "webhooks", title: "Webhooks", permission: "webhooks.manage", render: webhooks },
  { id: "dead-letters", title: "Dead letters", permission: "jobs.manage", render: deadLetters },
  { id: "audit", title: "Audit log", permission: "audit.read", render: audit },
  { id: "tenants", title: "Tenants", permission: "tenants.manage", render: tenants },
];
