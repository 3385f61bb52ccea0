// The console's only channel to the JSON API.
//
// The access token lives in this module's memory and nowhere else (never in
// web storage or a script-readable cookie). The refresh token lives only in
// its HttpOnly cookie: POST /auth/refresh is sent with no body, and the copy of
// the refresh token in the JSON answer is dropped unread.

const ROOT = document.body.dataset.api || "";
const SLOW_MS = 300;

let accessToken = null;
let refreshing = null;
let pending = 0;
let slowTimer = null;
const signedOutListeners = [];

/** An RFC 9457 problem answer (or a network failure, status 0). */
export class Problem extends Error {
  constructor(status, body) {
    const detail = body && typeof body.detail === "string" ? body.detail : "";
    super(detail || (status ? `The server answered ${status}.` : "The server could not be reached."));
    this.status = status;
    this.body = body || {};
  }

  /** The 422 `errors` entries: `[{loc, msg, type}]`. */
  get errors() {
    return Array.isArray(this.body.errors) ? this.body.errors : [];
  }
}

/** Call `listener()` when the session ends (a refresh failed, or the user signed out). */
export function onSignedOut(listener) {
  signedOutListeners.push(listener);
}

export function hasToken() {
  return accessToken !== null;
}

/** Keep a fresh access token (from a login or 2FA answer) in memory. */
export function useTokens(pair) {
  accessToken = pair && typeof pair.access_token === "string" ? pair.access_token : null;
}

function endSession() {
  const had = accessToken !== null;
  accessToken = null;
  if (had) {
    for (const listener of signedOutListeners) listener();
  }
}

function track(delta) {
  pending += delta;
  const indicator = document.getElementById("busy");
  const main = document.getElementById("main");
  if (pending > 0 && slowTimer === null) {
    slowTimer = window.setTimeout(() => {
      if (pending > 0) {
        if (indicator) indicator.hidden = false;
        if (main) main.setAttribute("aria-busy", "true");
      }
    }, SLOW_MS);
  }
  if (pending === 0) {
    window.clearTimeout(slowTimer);
    slowTimer = null;
    if (indicator) indicator.hidden = true;
    if (main) main.removeAttribute("aria-busy");
  }
}

function send(method, path, body, headers, withToken) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (withToken && accessToken) init.headers.Authorization = `Bearer ${accessToken}`;
  return fetch(ROOT + path, init);
}

async function parse(response) {
  const type = response.headers.get("content-type") || "";
  const data = response.status !== 204 && type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

function tokenRefused(response) {
  return /invalid_token/.test(response.headers.get("www-authenticate") || "");
}

/** Trade the HttpOnly refresh cookie for a new access token; `true` when it worked. */
export function refresh() {
  if (refreshing === null) {
    refreshing = (async () => {
      track(+1);
      try {
        const response = await send("POST", "/auth/refresh", undefined, {}, false);
        if (!response.ok) return false;
        const pair = await response.json();
        accessToken = pair.access_token; // pair.refresh_token is deliberately left unread
        return true;
      } catch {
        return false;
      } finally {
        track(-1);
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/**
 * One API call. A 401 on an authenticated call refreshes once and retries;
 * when that fails the session is over and the sign-in form comes back.
 * Throws `Problem` on any non-2xx answer.
 */
export async function request(method, path, body, { headers = {}, auth = true } = {}) {
  track(+1);
  try {
    let response;
    try {
      const sentToken = auth && accessToken !== null;
      response = await send(method, path, body, headers, auth);
      // Only a refused *token* (or none at all) means the session may need refreshing;
      // any other 401 (a wrong password on /auth/password or /auth/2fa/totp) is the
      // answer itself, and repeating it would count twice toward the lockout.
      if (auth && response.status === 401 && (!sentToken || tokenRefused(response))) {
        if (await refresh()) response = await send(method, path, body, headers, true);
        if (response.status === 401 && tokenRefused(response)) endSession();
        else if (response.status === 401 && accessToken === null) endSession();
      }
    } catch (error) {
      if (error instanceof Problem) throw error;
      throw new Problem(0, null);
    }
    return await parse(response);
  } finally {
    track(-1);
  }
}

/** Forget the access token and tell the page (after a sign-out). */
export function forget() {
  endSession();
}

/** The helper plugin panels receive as `api`. */
export const api = Object.freeze({
  root: ROOT,
  get: (path, options) => request("GET", path, undefined, options),
  send: (method, path, body, options) => request(method, path, body, options),
  post: (path, body, options) => request("POST", path, body, options),
  patch: (path, body, options) => request("PATCH", path, body, options),
  del: (path, options) => request("DELETE", path, undefined, options),
  Problem,
});
