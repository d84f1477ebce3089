// Small DOM helpers. Every piece of data reaches the page as text (textContent or an
// attribute), never as HTML.

/** Build an element: h("a", {href: "#/x", class: "y"}, "text", child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's content. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A section with a heading, for the panels of a page. */
export function panel(title, ...children) {
  const id = "p-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return h("section", {class: "panel", "aria-labelledby": id},
    h("h2", {id}, title), ...children);
}

/** A table from column headings and rows of cells (nodes or text). */
export function table(headings, rows, caption) {
  return h("table", {class: "grid"},
    caption ? h("caption", {class: "sr-only"}, caption) : null,
    h("thead", {}, h("tr", {}, headings.map((text) => h("th", {scope: "col"}, text)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))));
}

export function empty(text) {
  return h("p", {class: "empty"}, text);
}

export function badge(status) {
  const known = ["active", "done", "failed", "cancelled"].includes(status);
  return h("span", {class: `badge badge-${known ? status : "other"}`}, status ?? "?");
}

export function code(text) {
  return h("code", {}, text);
}

export function json(value) {
  return h("pre", {class: "json"}, JSON.stringify(value, null, 2));
}

/** An ISO instant as local date and time, with the instant itself as a tooltip. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return h("time", {datetime: iso, title: iso}, date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }));
}

/** "in 23h 59m" / "3m ago" from now to an ISO instant. */
export function relative(iso, now = Date.now()) {
  const at = new Date(iso).getTime();
  if (Number.isNaN(at)) return "";
  const seconds = Math.round((at - now) / 1000);
  const span = duration(Math.abs(seconds));
  return seconds >= 0 ? `in ${span}` : `${span} ago`;
}

function duration(seconds) {
  const parts = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]];
  const out = [];
  let rest = seconds;
  for (const [size, unit] of parts) {
    if (rest >= size || (unit === "s" && out.length === 0)) {
      out.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (out.length === 2) break;
  }
  return out.join(" ");
}

/** A hash link, its parts encoded: link(["instances", wf, id], {state: x}). */
export function route(parts, query = {}) {
  const path = parts.map((part) => encodeURIComponent(part)).join("/");
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, value);
  }
  const text = params.toString();
  return `#/${path}${text ? "?" + text : ""}`;
}

/** A message line: kind is "info", "ok" or "error". */
export function notice(kind, ...children) {
  return h("div", {class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status"},
    ...children);
}
