// #/deadletters: every record the runtime could not process, newest first: why, at which
// stage, where it came from, the original record decoded on request, and a button that
// sends it back to its topic (POST /api/deadletters/<id>/replay).

import {get, path, post} from "./api.js";
import {code, empty, fill, h, json, notice, route, table, when} from "./dom.js";

const STAGES = ["decode", "route", "step", "handler", "internal", "unreadable"];
const PAGE = 100;

export async function renderDeadLetters(main, query) {
  const list = h("div", {}, empty("Loading…"));
  fill(main, h("h1", {}, "Dead letters"), filters(query), list);
  let body;
  try {
    body = await get("deadletters", {stage: query.stage, limit: PAGE, cursor: query.cursor});
  } catch (error) {
    fill(list, notice("error", error.message));
    return null;
  }
  const letters = Array.isArray(body) ? body : body.deadletters || [];
  fill(list, h("section", {class: "panel", "aria-label": "Dead letters"},
    letters.length
      ? table(["Id", "Failed", "Stage", "Instance", "Reason", ""], letters.map(row),
        "Dead letters")
      : empty("No dead letters."),
    pager(query, body.next_cursor, letters.length)));
  return null;
}

function filters(query) {
  const stage = h("select", {name: "stage"}, h("option", {value: ""}, "any"),
    STAGES.map((s) => h("option", {value: s, selected: s === query.stage}, s)));
  const form = h("form", {class: "filters", role: "search", "aria-label": "Filter dead letters"},
    h("label", {class: "field"}, "Stage", stage),
    h("button", {type: "submit", class: "primary"}, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = route(["deadletters"], {stage: stage.value});
  });
  return h("section", {class: "panel"}, form);
}

function pager(query, next, shown) {
  return h("nav", {class: "pager", "aria-label": "Pages"},
    query.cursor ? h("a", {href: route(["deadletters"], {...query, cursor: ""})},
      "« First page") : null,
    next ? h("a", {href: route(["deadletters"], {...query, cursor: next})}, "Next page »")
      : null,
    h("span", {}, `${shown} shown${next ? "" : ", no more"}`));
}

function row(letter) {
  const where = `${letter.source_topic}@${letter.source_partition}:${letter.source_offset}`;
  const instance = letter.workflow_type && letter.instance_id
    ? h("a", {href: route(["instances", letter.workflow_type, letter.instance_id])},
      `${letter.workflow_type}/${letter.instance_id}`)
    : "—";
  return [
    h("span", {class: "mono"}, letter.id),
    when(letter.failed_at),
    h("span", {}, letter.stage, letter.event_type ? h("div", {}, code(letter.event_type)) : null),
    instance,
    h("div", {}, h("div", {}, letter.reason), record(letter, where)),
    replayButton(letter),
  ];
}

/** The original record, fetched when opened (GET /api/deadletters/<id>). */
function record(letter, where) {
  const body = h("div", {}, empty("Loading…"));
  const details = h("details", {}, h("summary", {}, `record from ${where}`), body);
  let loaded = false;
  details.addEventListener("toggle", async () => {
    if (!details.open || loaded) return;
    loaded = true;
    try {
      const full = await get(`deadletters/${path(letter.id)}`);
      fill(body, json(full.record ?? full));
    } catch (error) {
      loaded = false;
      fill(body, notice("error", error.message));
    }
  });
  return details;
}

function replayButton(letter) {
  const result = h("div", {"aria-live": "polite"});
  const refused = letter.value_truncated ? "only a prefix of the record was kept"
    : letter.stage === "unreadable" ? "not a readable dead letter" : null;
  const button = h("button", {type: "button", disabled: Boolean(refused),
    title: refused || `Send ${letter.id} back to ${letter.source_topic}`}, "Replay");
  button.addEventListener("click", async () => {
    if (!confirm(`Replay dead letter ${letter.id} to ${letter.source_topic}?`)) return;
    button.disabled = true;
    try {
      const answer = await post(`deadletters/${path(letter.id)}/replay`);
      fill(result, notice("ok", `${answer.status}: sent back to ${answer.body?.topic ?? "its topic"}`));
    } catch (error) {
      button.disabled = false;
      fill(result, notice("error", `${error.status ?? ""} ${error.message}`));
    }
  });
  return h("div", {}, button, result);
}
