// #/instances: the instances list, newest first, filtered by workflow type, status and state
// (a state filter matches the state and everything inside it), a page at a time by the
// API's cursor; and a form to start an instance.

import {get, newIdempotencyKey, once, path} from "./api.js";
import {badge, empty, fill, h, notice, panel, route, table, when} from "./dom.js";
import {submitJson} from "./forms.js";
import {workflows} from "./workflows.js";

const STATUSES = ["active", "done", "failed", "cancelled"];
const PAGE = 50;

export async function renderInstances(main, query) {
  const known = await workflows().catch(() => []);
  const list = h("div", {}, empty("Loading…"));
  fill(main, h("h1", {}, "Instances"), filters(query, known), list, startForm(query, known));
  await showPage(list, query);
  return null;
}

function field(label, control) {
  return h("label", {class: "field"}, label, control);
}

function select(name, value, options) {
  return h("select", {name},
    h("option", {value: ""}, "any"),
    options.map((option) => h("option", {value: option, selected: option === value}, option)));
}

function filters(query, known) {
  const form = h("form", {class: "filters", role: "search", "aria-label": "Filter instances"},
    field("Workflow", select("workflow", query.workflow, known.map((w) => w.workflow))),
    field("Status", select("status", query.status, STATUSES)),
    field("State (and inside it)", h("input", {name: "state", value: query.state || "",
      placeholder: "e.g. fulfilment.packing", spellcheck: "false"})),
    h("button", {type: "submit", class: "primary"}, "Filter"),
    h("a", {class: "button", href: "#/instances"}, "Clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    location.hash = route(["instances"], {...data, state: data.state.trim()});
  });
  return panel("Filter", form);
}

async function showPage(list, query) {
  let body;
  try {
    body = await get("instances", {
      workflow: query.workflow, status: query.status, state: query.state,
      limit: PAGE, cursor: query.cursor,
    });
  } catch (error) {
    fill(list, notice("error", error.message));
    return;
  }
  const rows = body.instances || [];
  fill(list, panel(`Instances`,
    rows.length ? table(["Instance", "Workflow", "Status", "States", "Seq", "Updated"],
      rows.map(row), "Instances") : empty("No instance matches."),
    pager(query, body.next_cursor, rows.length)));
}

function row(item) {
  const workflow = item.workflow_type ?? item.workflow;
  const version = item.workflow_version ?? item.version;
  return [
    h("a", {href: route(["instances", workflow, item.instance_id])}, item.instance_id),
    h("span", {}, workflow, version ? h("span", {class: "tag"}, `v${version}`) : null),
    badge(item.status),
    h("span", {class: "state"}, (item.configuration || []).join(", ") || "—"),
    h("span", {class: "mono"}, String(item.seq ?? "")),
    when(item.updated_at),
  ];
}

function pager(query, next, shown) {
  return h("nav", {class: "pager", "aria-label": "Pages"},
    query.cursor ? h("a", {href: route(["instances"], {...query, cursor: ""})}, "« First page")
      : null,
    next ? h("a", {href: route(["instances"], {...query, cursor: next})}, "Next page »") : null,
    h("span", {}, `${shown} shown${next ? "" : ", no more"}`));
}

function startForm(query, known) {
  const result = h("div", {"aria-live": "polite"});
  const button = h("button", {type: "submit", class: "primary"}, "Start");
  const form = h("form", {class: "inline", "aria-label": "Start an instance"},
    field("Workflow", h("select", {name: "workflow", required: true},
      known.map((w) => h("option", {value: w.workflow, selected: w.workflow === query.workflow},
        w.workflow)))),
    field("Instance id", h("input", {name: "id", required: true, spellcheck: "false",
      placeholder: "order-1001"})),
    h("label", {class: "field wide"}, "$start payload (JSON object)",
      h("textarea", {name: "payload", spellcheck: "false"}, "{}")),
    button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const key = newIdempotencyKey(); // one per submission: a resent request is applied once
    await once(button,
      () => startInstance(result, data.workflow, data.id.trim(), data.payload, key));
  });
  return h("details", {class: "panel"}, h("summary", {}, "Start an instance"), form, result);
}

async function startInstance(result, workflow, id, text, key) {
  const answer = await submitJson(result, `instances/${path(workflow, id)}`, text, key);
  if (answer) {
    fill(result, notice("ok", `${answer.status}: accepted. `,
      h("a", {href: route(["instances", workflow, id])}, "Open the instance")));
  }
}
