// The console's data layer: the worker's HTTP API (docs/api.md), relative to the page, so
// the console works behind a path prefix too. The token (OMNINODE_API_TOKEN deployments)
// lives in this browser's localStorage and goes with every request.

const TOKEN_KEY = "omninode.apiToken";

export function token() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(value) {
  try {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage refused (private mode): the token lasts until the page reloads
  }
  sessionToken = value;
}

let sessionToken = null;

/** An answer other than 2xx: its status and the API's message. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function headers(extra = {}) {
  const found = {Accept: "application/json", ...extra};
  const value = sessionToken ?? token();
  if (value) found.Authorization = `Bearer ${value}`;
  return found;
}

function url(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, value);
  }
  const text = params.toString();
  return `api/${path}${text ? "?" + text : ""}`;
}

/** The path's parts, each percent-encoded. */
export function path(...parts) {
  return parts.map((part) => encodeURIComponent(part)).join("/");
}

async function answer(response) {
  const text = await response.text();
  let body = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  if (!response.ok) throw new ApiError(response.status, message(response, body), body);
  return {status: response.status, body};
}

/** The API's reason for an error answer, whatever its shape. */
export function message(response, body) {
  if (body && typeof body === "object") {
    const error = body.error;
    if (error && typeof error === "object" && error.message) return error.message;
    if (typeof error === "string") return body.message || error;
    if (body.message) return body.message;
    if (body.detail) return String(body.detail);
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 500);
  return `${response.status} ${response.statusText}`;
}

export async function get(path_, query) {
  const response = await fetch(url(path_, query), {headers: headers(), cache: "no-store"});
  return (await answer(response)).body;
}

export async function getText(path_, query, accept = "image/svg+xml") {
  const response = await fetch(url(path_, query), {
    headers: headers({Accept: accept}), cache: "no-store",
  });
  if (!response.ok) await answer(response); // throws the ApiError
  return response.text();
}

/**
 * POST a JSON body (none: the header alone; the API refuses a POST that does not say
 * application/json); resolves to {status, body} for any 2xx answer. `idempotencyKey`
 * goes as the Idempotency-Key header: the API applies one key once.
 */
export async function post(path_, payload, idempotencyKey) {
  const extra = {"Content-Type": "application/json"};
  if (idempotencyKey) extra["Idempotency-Key"] = idempotencyKey;
  const init = {method: "POST", headers: headers(extra), cache: "no-store"};
  if (payload !== undefined) init.body = JSON.stringify(payload);
  return answer(await fetch(url(path_), init));
}

/**
 * A new Idempotency-Key (a random UUID), made once per form submission. crypto.randomUUID
 * exists only in secure contexts (https, localhost); a worker reached over plain http by
 * another name gets one from crypto.getRandomValues, which every context has.
 */
export function newIdempotencyKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const parts = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20)];
  return [...parts, hex.slice(20)].join("-");
}

/**
 * Runs `send` once at a time for `button`'s form: the button stays disabled (and marked
 * busy) until the answer arrives, so a double click sends nothing twice.
 */
export async function once(button, send) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await send();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}
