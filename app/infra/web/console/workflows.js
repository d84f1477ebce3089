// #/workflows: every workflow type the worker loaded, its versions, and how many instances
// are in each state and status (links open the instances list filtered that way).

import {get, path} from "./api.js";
import {empty, fill, h, notice, route, table} from "./dom.js";

/** The API's workflow rows, whatever wraps them. */
export async function workflows() {
  const body = await get("workflows");
  return Array.isArray(body) ? body : body.workflows || [];
}

export async function renderWorkflows(main) {
  fill(main, h("h1", {}, "Workflows"), empty("Loading…"));
  let rows;
  try {
    rows = await workflows();
  } catch (error) {
    fill(main, h("h1", {}, "Workflows"), notice("error", error.message));
    return null;
  }
  fill(main, h("h1", {}, "Workflows ", h("span", {class: "sub"}, `${rows.length} types`)),
    rows.length ? rows.map(card) : empty("The worker loaded no charts."));
  return null;
}

function latestVersion(row) {
  const versions = row.versions || [];
  return versions.find((v) => v.version === row.latest) || versions[versions.length - 1] || {};
}

function card(row) {
  const name = row.workflow;
  const latest = latestVersion(row);
  const statuses = Object.entries(row.statuses || {});
  const states = Object.entries(row.states || {});
  return h("section", {class: "panel workflow-card", "aria-label": name},
    h("h2", {}, h("a", {href: route(["instances"], {workflow: name})}, name),
      h("span", {class: "count"}, `latest v${row.latest ?? latest.version ?? "?"}`)),
    latest.description ? h("p", {class: "desc"}, latest.description) : null,
    h("div", {class: "counts", "aria-label": "Instances by status"},
      statuses.length
        ? statuses.map(([status, count]) => chip(status, count,
          route(["instances"], {workflow: name, status})))
        : h("span", {class: "empty"}, "No instances yet.")),
    states.length ? stateTable(name, states) : null,
    versionList(name, row.versions || []));
}

function chip(label, count, href) {
  return h("a", {class: "count-chip", href}, h("span", {}, label), h("b", {}, String(count)));
}

function stateTable(name, states) {
  // "(cancelled)": instances in no state, listed by their status instead.
  const rows = states.map(([state, count]) => [
    h("span", {class: "state"}, state),
    h("a", {href: route(["instances"], state.startsWith("(") && state.endsWith(")")
      ? {workflow: name, status: state.slice(1, -1)} : {workflow: name, state})},
    String(count)),
  ]);
  return h("details", {open: states.length <= 12},
    h("summary", {}, `Instances per state (${states.length} states)`),
    table(["State", "Instances"], rows, `Instances of ${name} per state`));
}

function versionList(name, versions) {
  if (!versions.length) return null;
  const rows = [...versions].sort((a, b) => b.version - a.version).map((v) => [
    `v${v.version}`,
    h("span", {class: "mono"}, v.file || ""),
    (v.events || []).length ? (v.events || []).join(", ") : "—",
    h("a", {href: `api/workflows/${path(name)}/diagram.svg?version=${v.version}`,
      target: "_blank", rel: "noopener"}, "diagram"),
  ]);
  return h("details", {},
    h("summary", {}, `Versions (${versions.length})`),
    table(["Version", "File", "Events", ""], rows, `Versions of ${name}`));
}
