/* Directions: sliders along the model's latent directions (GET .../directions), the image at the
   sliders' offsets (POST .../traverse) updated live while dragging.

   At most one traverse request is in flight; a slider moved meanwhile sends its latest value when
   the answer comes, so dragging never builds a backlog. */

import { guard, json, api } from "./api.js";
import { $, $$, el } from "./dom.js";
import { className, hasNeed, modelPath, state } from "./state.js";

const K = 5; // directions offered
const SPAN = 3; // sliders run over ±span of each direction's scale (the server says its span)
const section = $("#directions");
const image = $("#traverse-image");
const flight = { busy: false, again: false, url: null };
let current = null; // {seed, label, temperature}: the sample the sliders start from

const sliders = () => $$("#sliders input[type=range]");

/** The sample the sliders start from (a grid's first image, or the one clicked). */
export function setCurrent(sample) {
  current = sample;
  if (hasNeed("directions")) request();
}

function request() {
  if (!current || !sliders().length) return;
  if (flight.busy) {
    flight.again = true;
    return;
  }
  flight.busy = true;
  image.setAttribute("aria-busy", "true");
  traverse().finally(() => {
    flight.busy = false;
    image.removeAttribute("aria-busy");
    if (flight.again) {
      flight.again = false;
      request();
    }
  });
}

const traverse = guard(section, async () => {
  const offsets = sliders().map((s) => Number(s.value));
  const { seed, label, temperature } = current;
  const response = await api(modelPath("/traverse"), {
    method: "POST", accept: "image/png", json: { seed, label, offsets, temperature },
  });
  const blob = await response.blob();
  if (flight.url) URL.revokeObjectURL(flight.url);
  flight.url = URL.createObjectURL(blob);
  image.src = flight.url;
  const moved = offsets.map((o, i) => (o ? `d${i + 1} ${o > 0 ? "+" : ""}${o.toFixed(1)}` : null)).filter(Boolean);
  $("#traverse-caption").textContent = `seed ${seed}${label != null ? `, class ${className(label)}` : ""}`
    + (moved.length ? ` · ${moved.join(", ")}` : "");
  image.alt = `image of seed ${seed} moved along the directions: ${moved.join(", ") || "none"}`;
});

const load = guard(section, async (fallback) => {
  const box = $("#sliders");
  box.replaceChildren(el("p", { class: "hint", text: "finding directions…" }));
  $("#directions-method").textContent = "…";
  const name = state.model.name;
  const data = await json(modelPath(`/directions?k=${K}`));
  if (!state.model || state.model.name !== name) return; // the model changed meanwhile
  $("#directions-method").textContent = data.method === "sefa" ? "SeFa: read from the generator's weights"
    : data.method === "pca" ? "PCA of the codes of real images" : String(data.method);
  const span = Number(data.span) > 0 ? Number(data.span) : SPAN;
  box.replaceChildren();
  for (let i = 0; i < data.directions; i++) {
    const id = `direction-${i}`;
    const input = el("input", { type: "range", id, min: String(-span), max: String(span), step: "0.1", value: "0",
      "data-field": "offsets" });
    const out = el("output", { for: id, text: "0.0" });
    input.addEventListener("input", () => {
      out.textContent = Number(input.value).toFixed(1);
      request();
    });
    box.append(el("div", { class: "slider" }, [el("label", { for: id, text: `Direction ${i + 1}` }), input, out]));
  }
  box.append(el("span", { class: "field-error", role: "alert", "data-error-for": "offsets" }));
  if (!current) current = fallback();
  request();
});

export function init() {
  $("#sliders-reset").addEventListener("click", () => {
    for (const input of sliders()) {
      input.value = "0";
      input.nextElementSibling.textContent = "0.0";
    }
    request();
  });
}

/** A new model: its directions (when it has some); `fallback()` gives the sample to start from
    when none was drawn yet. */
export function onModel(fallback) {
  current = null;
  $("#sliders").replaceChildren();
  if (hasNeed("directions")) load(fallback);
}
