// The console's entry point: a hash router over four views, and the token field.
//   #/workflows                      workflow types, versions, instances per state
//   #/instances?workflow=&status=&state=&cursor=   the instances list
//   #/instances/<workflow>/<id>      one instance: diagram, journal, data, timers, send
//   #/deadletters                    dead letters, with replay

import {setToken, token} from "./api.js";
import {empty, fill, h, notice} from "./dom.js";
import {renderDeadLetters} from "./deadletters.js";
import {renderInstance} from "./instance.js";
import {renderInstances} from "./instances.js";
import {renderWorkflows} from "./workflows.js";

const main = document.getElementById("main");
let leave = null; // the current view's cleanup (stops its refresh timer)

/** "#/instances/a/b?x=1" -> {parts: ["instances", "a", "b"], query: {x: "1"}} */
export function parseHash(hash) {
  const text = hash.replace(/^#\/?/, "");
  const [path, search = ""] = text.split("?", 2);
  const parts = path.split("/").filter(Boolean).map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  });
  return {parts, query: Object.fromEntries(new URLSearchParams(search))};
}

function pick({parts, query}) {
  const [view, ...rest] = parts;
  if (!view || view === "workflows") return ["workflows", () => renderWorkflows(main, query)];
  if (view === "instances" && rest.length === 0) {
    return ["instances", () => renderInstances(main, query)];
  }
  if (view === "instances" && rest.length === 2) {
    return ["instances", () => renderInstance(main, rest[0], rest[1], query)];
  }
  if (view === "deadletters") return ["deadletters", () => renderDeadLetters(main, query)];
  return [null, () => {
    fill(main, h("h1", {}, "Not found"),
      empty(`Nothing at ${location.hash}.`), h("a", {href: "#/workflows"}, "Workflows"));
    return null;
  }];
}

async function show() {
  if (leave) leave();
  leave = null;
  const [view, render] = pick(parseHash(location.hash));
  for (const link of document.querySelectorAll(".top nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    leave = (await render()) || null;
  } catch (error) {
    fill(main, notice("error", `Could not show this page: ${error.message}`));
  }
}

function tokenField() {
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  input.value = token();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    show();
  });
}

tokenField();
window.addEventListener("hashchange", show);
show();
