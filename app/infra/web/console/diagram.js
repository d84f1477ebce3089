// The chart drawn by the worker (GET /api/workflows/<type>/diagram.svg), inlined so its
// states are part of the page: each state is a <g data-state="<path>">, with the class
// "active" where the instance is (and around it).

import {getText, path} from "./api.js";
import {fill, h, notice} from "./dom.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/** Parse the SVG text and keep only drawing: no scripts, no event handlers, no links out. */
export function parseSvg(text) {
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  const root = doc.documentElement;
  if (root.namespaceURI !== SVG_NS || root.localName !== "svg") {
    throw new Error("the diagram is not an SVG document");
  }
  for (const bad of root.querySelectorAll("script, foreignObject, a, use, image")) bad.remove();
  for (const element of [root, ...root.querySelectorAll("*")]) {
    for (const attribute of [...element.attributes]) {
      const name = attribute.name.toLowerCase();
      if (name.startsWith("on") || name === "href" || name === "xlink:href") {
        element.removeAttribute(attribute.name);
      }
    }
  }
  return document.importNode(root, true);
}

/** A panel body showing the diagram, with a fit-to-width switch; returns {element, show}. */
export function diagramView() {
  const frame = h("div", {class: "diagram", tabindex: "0", role: "group",
    "aria-label": "State chart diagram; active states are highlighted"});
  const fit = h("input", {type: "checkbox", id: "diagram-fit"});
  fit.addEventListener("change", () => {
    frame.classList.toggle("fit", fit.checked);
    if (!fit.checked) scrollToActive(frame);
  });
  const tools = h("span", {class: "diagram-tools"},
    h("span", {class: "legend"}, h("i", {"aria-hidden": "true"}), "current state"),
    h("label", {class: "legend"}, fit, "Fit to width"));
  let shown = null; // the key of what is drawn: version and active states

  async function show(workflow, version, active) {
    const key = JSON.stringify([workflow, version, active]);
    if (key === shown) return;
    const query = {version, active: active.join(",")};
    try {
      const text = await getText(`workflows/${path(workflow)}/diagram.svg`, query);
      fill(frame, parseSvg(text));
      shown = key;
    } catch (error) {
      fill(frame, notice("error", `No diagram: ${error.message}`));
      return;
    }
    chooseFit(frame, fit);
  }
  return {tools, frame, show};
}

function chooseFit(frame, fit) {
  const svg = frame.querySelector("svg");
  const width = svg ? Number(svg.getAttribute("width")) : 0;
  const room = frame.clientWidth || 1;
  const scale = room / (width || 1);
  fit.checked = width > room && scale >= 0.6;
  frame.classList.toggle("fit", fit.checked);
  if (!fit.checked) scrollToActive(frame);
}

/** Scroll the frame so the first current (innermost active) state is in view. */
function scrollToActive(frame) {
  const current = [...frame.querySelectorAll("g.active")]
    .find((group) => !group.querySelector("g.active"));
  if (!current) return;
  const box = current.getBoundingClientRect();
  const outer = frame.getBoundingClientRect();
  frame.scrollLeft += box.left - outer.left - frame.clientWidth / 3;
  frame.scrollTop += box.top - outer.top - frame.clientHeight / 3;
}
