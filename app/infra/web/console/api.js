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

/** POST a JSON body; resolves to {status, body} for any 2xx answer. */
export async function post(path_, payload) {
  const init = {method: "POST", headers: headers({"Content-Type": "application/json"})};
  if (payload !== undefined) init.body = JSON.stringify(payload);
  return answer(await fetch(url(path_), init));
}
