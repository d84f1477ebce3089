// The instance's journal as a timeline, newest first: seq, event type, when it occurred,
// the states it left the instance in, whether it was ignored and why, events it raised.
// Fetched a page at a time (GET .../history?from_seq=&limit=): the latest records first,
// then only what is new on each refresh; older pages on request.

import {get, path} from "./api.js";
import {badge, empty, fill, h, json, notice, when} from "./dom.js";

const PAGE = 200;

export function timelineView(workflow, id) {
  const list = h("ol", {class: "timeline", "aria-label": "Journal, newest first"});
  const status = h("div", {"aria-live": "polite"});
  const more = h("button", {type: "button", hidden: true}, "Load earlier records");
  const element = h("div", {}, status, list, more);
  let first = null; // lowest seq shown
  let last = 0; // highest seq shown
  const base = `instances/${path(workflow, id)}/history`;

  async function page(from, limit) {
    const body = await get(base, {from_seq: from, limit});
    return {records: body.records || (Array.isArray(body) ? body : []), body};
  }

  /** Bring the timeline up to ``seq`` (the snapshot's). */
  async function update(seq) {
    if (seq <= last) return;
    const from = last ? last + 1 : Math.max(1, seq - PAGE + 1);
    try {
      const {records, body} = await page(from, Math.min(PAGE, seq - from + 1));
      fill(status, gaps(body.missing));
      if (!records.length && !last) fill(status, empty("No journal records yet."));
      for (const record of records.sort((a, b) => a.seq - b.seq)) {
        list.prepend(item(record));
        last = Math.max(last, record.seq);
        first = first === null ? record.seq : Math.min(first, record.seq);
      }
      more.hidden = !(first > 1);
    } catch (error) {
      fill(status, notice("error", `Journal: ${error.message}`));
    }
  }

  more.addEventListener("click", async () => {
    const from = Math.max(1, first - PAGE);
    try {
      const {records} = await page(from, first - from);
      for (const record of records.sort((a, b) => b.seq - a.seq)) {
        list.append(item(record));
        first = Math.min(first, record.seq);
      }
      more.hidden = !(first > 1) || !records.length;
    } catch (error) {
      fill(status, notice("error", `Journal: ${error.message}`));
    }
  });

  return {element, update};
}

function gaps(missing) {
  if (!missing || !missing.length) return null;
  return notice("info", `Not in the journal index: seq ${missing.join(", ")}.`);
}

function item(record) {
  const event = record.event || {};
  const ignored = Boolean(record.ignored);
  const states = (record.configuration || []).join(", ");
  return h("li", {class: ignored ? "ignored" : null, "data-seq": record.seq},
    h("span", {class: "seq"}, `#${record.seq}`),
    h("div", {},
      h("div", {class: "head"},
        h("span", {class: "event"}, event.type ?? "?"),
        ignored ? h("span", {class: "tag tag-warn"}, "ignored") : null,
        h("span", {class: "at"}, when(event.occurred_at)),
        record.status && record.status !== "active" ? badge(record.status) : null),
      h("div", {class: "states"}, states || "(no state)"),
      record.reason ? h("div", {class: "note"}, record.reason) : null,
      (record.raised || []).length
        ? h("div", {class: "note"}, `raised ${record.raised.join(", ")}`) : null,
      details(event)));
}

function details(event) {
  const payload = event.payload || {};
  const ids = {event_id: event.event_id, dispatch_id: event.dispatch_id,
    timer_id: event.timer_id, causation_id: event.causation_id};
  const known = Object.fromEntries(Object.entries(ids).filter(([, v]) => v));
  return h("details", {},
    h("summary", {}, Object.keys(payload).length ? "payload and ids" : "ids"),
    Object.keys(payload).length ? json(payload) : null,
    json(known));
}
