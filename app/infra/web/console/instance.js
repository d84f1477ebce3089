// #/instances/<workflow>/<id>: one instance, like an operations tool's instance view — the
// chart with the current states highlighted, status and reason, the journal as a
// timeline, data, pending dispatches, armed timers, and a form to send it an event.
// Refreshed every few seconds while the tab is visible.

import {ApiError, get, newIdempotencyKey, once, path} from "./api.js";
import {diagramView} from "./diagram.js";
import {
  badge, code, empty, fill, h, json, notice, panel, relative, route, table, when,
} from "./dom.js";
import {submitJson} from "./forms.js";
import {timelineView} from "./timeline.js";
import {workflows} from "./workflows.js";

const REFRESH_MS = 3000;

export async function renderInstance(main, workflow, id) {
  const parts = {
    header: h("div", {}), facts: h("div", {}), data: h("div", {}),
    pending: h("div", {}), timers: h("div", {}), completed: h("div", {}),
    stamp: h("span", {class: "refreshed"}),
  };
  const diagram = diagramView();
  const timeline = timelineView(workflow, id);
  const send = sendForm(workflow, id);
  fill(main,
    h("div", {class: "crumbs"}, h("a", {href: "#/instances"}, "Instances"), " / ",
      h("a", {href: route(["instances"], {workflow})}, workflow)),
    parts.header,
    h("section", {class: "panel", "aria-labelledby": "p-status"},
      h("h2", {id: "p-status"}, "Instance", parts.stamp), parts.facts),
    h("section", {class: "panel", "aria-labelledby": "p-diagram"},
      h("h2", {id: "p-diagram"}, "Diagram", diagram.tools), diagram.frame),
    h("div", {class: "cols"},
      h("div", {}, panel("Journal", timeline.element)),
      h("div", {}, panel("Data", parts.data), panel("Pending dispatches", parts.pending),
        panel("Armed timers", parts.timers),
        panel("Completed effects (compensated if it fails)", parts.completed),
        panel("Send an event", send.element))));
  let seen = null;
  let busy = false;
  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      seen = await load(workflow, id, parts, diagram, timeline, send, seen);
    } finally {
      busy = false;
    }
  }
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => clearInterval(timer);
}

async function load(workflow, id, parts, diagram, timeline, send, seen) {
  let snapshot;
  try {
    snapshot = await get(`instances/${path(workflow, id)}`);
  } catch (error) {
    const missing = error instanceof ApiError && error.status === 404;
    fill(parts.header, h("h1", {}, id, " ", h("span", {class: "sub"}, workflow)));
    fill(parts.facts, notice(missing ? "info" : "error",
      missing ? `No instance ${id} of ${workflow} (yet).` : error.message));
    return seen;
  }
  fill(parts.stamp, h("span", {class: "count"},
    ` · refreshed ${new Date().toLocaleTimeString()}, every ${REFRESH_MS / 1000} s`));
  const key = JSON.stringify([snapshot.seq, snapshot.status, snapshot.updated_at]);
  if (key !== seen) {
    showSnapshot(snapshot, parts);
    send.events(snapshot.version);
  }
  // Each is a no-op when up to date, and retried on the next refresh after a failure.
  await Promise.all([
    diagram.show(workflow, snapshot.version, snapshot.configuration || []),
    timeline.update(snapshot.seq || 0),
  ]);
  return key;
}

function showSnapshot(s, parts) {
  fill(parts.header, h("h1", {}, s.instance_id, " ",
    h("span", {class: "sub"}, `${s.workflow} v${s.version}`)));
  const facts = [
    ["Status", badge(s.status)],
    ["Current states", h("span", {class: "mono"}, (s.configuration || []).join(", ") || "—")],
    ["Events", String(s.seq)],
    ["Updated", when(s.updated_at)],
  ];
  if (s.parent) {
    facts.push(["Invoked by", h("a", {href: route(["instances", s.parent.workflow,
      s.parent.instance_id])}, `${s.parent.workflow}/${s.parent.instance_id}`)]);
  }
  fill(parts.facts,
    h("dl", {class: "facts"}, facts.map(([term, value]) => h("div", {},
      h("dt", {}, term), h("dd", {}, value)))),
    s.reason ? h("p", {class: "reason"}, s.reason) : null,
    children(s.children || []),
    s.output ? h("div", {}, h("h3", {class: "sr-only"}, "Output"), json(s.output)) : null);
  fill(parts.data, json(s.data ?? {}));
  fill(parts.pending, pendingTable(s.pending || []));
  fill(parts.timers, timerTable(s.timers || []));
  fill(parts.completed, completedTable(s.completed_effects || []));
}

function completedTable(done) {
  if (!done.length) return empty("None to compensate.");
  return table(["Effect", "Compensation", "Queue", "Dispatch"], done.map((c) => [
    code(c.name), code(c.compensate), c.queue || "default", h("span", {class: "mono"}, c.dispatch_id),
  ]), "Completed effects");
}

function children(runs) {
  if (!runs.length) return null;
  return h("div", {},
    h("p", {class: "note"}, "Child workflows:"),
    table(["Invoke", "Child", "Status"], runs.map((c) => [
      c.name,
      h("a", {href: route(["instances", c.workflow, c.instance_id])},
        `${c.workflow}/${c.instance_id}`),
      badge(c.status),
    ]), "Child workflows"));
}

function pendingTable(pending) {
  if (!pending.length) return empty("None: nothing is awaited.");
  return table(["Name", "Kind", "Attempt", "Queue", "Owner state", "Dispatch"],
    pending.map((p) => [
      h("span", {}, code(p.name), p.mode === "fire_and_forget"
        ? h("span", {class: "tag"}, "fire and forget") : null),
      p.child_workflow ? h("a", {href: route(["instances", p.child_workflow, p.child_id])},
        `workflow ${p.child_workflow}`) : p.kind,
      String(p.attempt ?? ""),
      p.queue || "default",
      h("span", {class: "state"}, p.owner || "(instance)"),
      h("span", {class: "mono"}, p.dispatch_id),
    ]), "Pending dispatches");
}

function timerTable(timers) {
  if (!timers.length) return empty("None armed.");
  const sorted = [...timers].sort((a, b) => String(a.deadline).localeCompare(b.deadline));
  return table(["Fires", "Event", "State", "Deadline"], sorted.map((t) => [
    relative(t.deadline),
    h("span", {}, code(t.event), t.dispatch_id ? h("span", {class: "tag"}, "deadline") : null),
    h("span", {class: "state"}, t.state || "(instance)"),
    when(t.deadline),
  ]), "Armed timers");
}

function sendForm(workflow, id) {
  const list = h("datalist", {id: "event-types"});
  const result = h("div", {"aria-live": "polite"});
  const button = h("button", {type: "submit", class: "primary"}, "Send");
  const form = h("form", {class: "inline", "aria-label": "Send an event"},
    h("label", {class: "field"}, "Event type",
      h("input", {name: "type", required: true, list: "event-types", spellcheck: "false",
        placeholder: "e.g. PAY"})),
    h("label", {class: "field wide"}, "Payload (JSON object)",
      h("textarea", {name: "payload", spellcheck: "false"}, "{}")),
    button, list);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const key = newIdempotencyKey(); // one per submission: a resent request is applied once
    await once(button,
      () => sendEvent(result, workflow, id, data.type.trim(), data.payload, key));
  });
  let known = null;
  async function events(version) {
    if (known === version) return;
    known = version;
    const rows = await workflows().catch(() => []);
    const row = rows.find((w) => w.workflow === workflow);
    const chart = (row?.versions || []).find((v) => v.version === version);
    fill(list, (chart?.events || []).filter((e) => e !== "$start")
      .map((e) => h("option", {value: e})));
  }
  return {element: h("div", {}, form, result), events};
}

async function sendEvent(result, workflow, id, type, text, key) {
  const answer = await submitJson(result, `instances/${path(workflow, id)}/events/${path(type)}`,
    text, key);
  if (answer) {
    fill(result, notice("ok", `${answer.status} Accepted: ${type} is on its way.`,
      answer.body ? json(answer.body) : null));
  }
}
