/* The page of `genforge serve`: plain JavaScript modules, no framework, nothing fetched from
   elsewhere (it works offline). This entry loads the models, wires the sections (one module each) and
   hides what the chosen model cannot do (elements marked data-needs="capability"). */

import { ApiError, KEY_STORE, clearErrors, json, showError } from "./api.js";
import * as detect from "./detect.js";
import * as directions from "./directions.js";
import { $, $$, el } from "./dom.js";
import * as edit from "./edit.js";
import * as sample from "./sample.js";
import { hasNeed, state } from "./state.js";

const picker = $("#model");

async function loadModels() {
  const header = $("header.top");
  clearErrors(header);
  let data;
  try {
    data = await json("/v1/models");
  } catch (error) {
    // 401: the key field has opened (api() did it) and says whether a key was refused
    showError(header, new ApiError(error.status, error.status === 401 ? "enter the server's API key"
      : error.message, "model"));
    return;
  }
  state.models = data.models || [];
  state.detector = data.detector || null;
  const previous = picker.value;
  picker.replaceChildren(...state.models.map((m) => el("option", { value: m.name, text: m.name })));
  picker.disabled = state.models.length === 0;
  if (!state.models.length) {
    showError(header, new ApiError(0, "no model is loaded", "model"));
    return;
  }
  if (state.models.some((m) => m.name === previous)) picker.value = previous;
  chooseModel(picker.value);
}

function describe(model) {
  const [c, h, w] = model.image_shape;
  const parts = [model.family, `${w}×${h}${c === 3 ? " colour" : c === 1 ? " grey" : ` ×${c}`}`];
  if (model.classes) parts.push(`${model.classes.length} classes`);
  parts.push(`latent ${model.latent_dim}`);
  if (model.prior && model.prior !== "none") parts.push(`prior ${model.prior}`);
  parts.push(`can: ${model.capabilities.join(", ")}`);
  return parts.join(" · ");
}

function chooseModel(name) {
  state.model = state.models.find((m) => m.name === name);
  state.caps = new Set(state.model.capabilities);
  $("#model-info").textContent = describe(state.model);
  for (const node of $$("[data-needs]")) node.hidden = !hasNeed(node.dataset.needs);
  $("#no-detector").hidden = Boolean(state.detector);
  sample.onModel(state.model);
  edit.onModel(state.model);
  directions.onModel(() => ({ seed: Number($("#seed").value) || 0, label: sample.readLabel(), temperature: 1 }));
}

$("#auth-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("#api-key").value.trim();
  const section = $("#auth");
  clearErrors(section);
  if (!key) {
    showError(section, new ApiError(0, "enter the key the server was started with", "api_key"));
    return;
  }
  sessionStorage.setItem(KEY_STORE, key);
  loadModels().then(() => {
    if (state.models.length) section.hidden = true;
  });
});

picker.addEventListener("change", () => chooseModel(picker.value));
sample.init(directions.setCurrent);
directions.init();
edit.init();
detect.init();
loadModels();
