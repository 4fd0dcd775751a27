/* Edit: the images to edit (slots A and B, filled by an upload or a test image of the model's
   data set), and the operations: inpaint (the mask), swap class, interpolate A -> B.

   An autoencoder edits at once (POST .../edit/{op}). A GAN inverts images by latent search, which
   takes seconds to minutes: its edits run as jobs (POST /v1/jobs/edit/...), their progress polled
   into a progress bar with a Cancel button. Polling rather than the job's event stream, because
   EventSource cannot send the API key header. */

import { ApiError, api, guard, json } from "./api.js";
import { $, $$, BLANK, el, png } from "./dom.js";
import * as mask from "./mask.js";
import { hideResult, init as initResult, showResult } from "./result.js";
import { className, hasNeed, modelPath, state } from "./state.js";

const POLL_MS = 300;
const section = $("#edit");
let slots = { a: null, b: null }; // each {blob, url, name, testIndex}
let testStart = 0;
let job = null; // the running job: {id, cancelled}

const chosenSlot = () => ($("#slot-b").checked ? "b" : "a");

function setSlot(which, item) {
  const old = slots[which];
  if (old && old.url.startsWith("blob:")) URL.revokeObjectURL(old.url);
  slots[which] = item;
  renderSlots();
}

function renderSlots() {
  for (const which of ["a", "b"]) {
    const img = $(`#slot-${which}-image`);
    const item = slots[which];
    img.src = item ? item.url : BLANK;
    img.alt = `Slot ${which.toUpperCase()}: ${item ? item.name : "empty"}`;
  }
  mask.setBackground(slots.a ? slots.a.url : null);
}

async function loadTestImages() {
  const data = await json(modelPath(`/test-images?start=${testStart}&n=16`));
  const grid = $("#test-grid");
  data.images.forEach((b64, i) => {
    const index = data.indices[i];
    const label = data.labels ? data.labels[i] : null;
    const what = label != null ? `, class ${className(label)}` : "";
    const button = el("button", { type: "button", class: "cell", title: `test image ${index}${what}`,
      "aria-label": `test image ${index}${what}: put in the chosen slot` }, [el("img", { src: png(b64), alt: "" })]);
    button.addEventListener("click", async () => {
      const blob = await (await fetch(png(b64))).blob();
      setSlot(chosenSlot(), { blob, url: png(b64), name: `test image ${index}`, testIndex: index });
    });
    grid.append(button);
  });
  testStart += data.images.length;
  $("#test-more").hidden = data.images.length === 0;
}

// The inputs: test images by their indices (the server then knows their labels), else as files.
function inputsForm(which) {
  const items = which.map((s) => slots[s]);
  items.forEach((item, i) => {
    if (!item) {
      throw new ApiError(0, `put an image in slot ${which[i].toUpperCase()} first (upload one or pick a test image)`,
        "images");
    }
  });
  const form = new FormData();
  if (items.every((item) => item.testIndex != null)) {
    form.append("test_indices", items.map((item) => item.testIndex).join(","));
  } else {
    items.forEach((item, i) => form.append("images", item.blob, `${which[i]}.png`));
  }
  return form;
}

function addField(form, name, selector) {
  const value = $(selector).value.trim();
  if (value !== "") form.append(name, value);
}

async function run(op, form, hole = null) {
  addField(form, "seed", "#seed");
  if (hasNeed("search")) addField(form, "search_steps", "#search-steps");
  const buttons = $$(".edit-ops button:not(#job-cancel)");
  $("#edit-status").textContent = "";
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const result = hasNeed("search") ? await runJob(op, form)
      : await json(modelPath(`/edit/${op}`), { method: "POST", form });
    if (result) showResult(result, hole);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

async function runJob(op, form) {
  const submitted = await json(`/v1/jobs/edit/${encodeURIComponent(state.model.name)}/${op}`, { method: "POST", form });
  const mine = { id: submitted.id, cancelled: false };
  job = mine;
  const box = $("#job");
  const bar = $("#job-progress");
  box.hidden = false;
  bar.value = 0;
  $("#job-message").textContent = "queued";
  try {
    for (;;) {
      let status;
      try {
        status = await json(`/v1/jobs/${encodeURIComponent(mine.id)}`);
      } catch (error) {
        // cancelled just as it finished: the server forgets a finished job that is cancelled
        if (mine.cancelled && error.status === 404) status = { state: "cancelled" };
        else throw error;
      }
      bar.value = Number(status.progress) || 0;
      $("#job-message").textContent = status.message || status.state;
      if (status.state === "done") return status.result;
      if (status.state === "cancelled") {
        $("#edit-status").textContent = `${op} cancelled`;
        return null;
      }
      if (status.state === "failed") throw new ApiError(0, status.error || "the edit failed", null);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    job = null;
    box.hidden = true;
  }
}

export function init() {
  mask.init(section);
  initResult();
  $("#upload").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (!file) return;
    setSlot(chosenSlot(), { blob: file, url: URL.createObjectURL(file), name: file.name, testIndex: null });
    event.target.value = "";
  });
  $("#test-load").addEventListener("click", guard(section, async () => {
    $("#test-grid").replaceChildren();
    testStart = 0;
    await loadTestImages();
  }));
  $("#test-more").addEventListener("click", guard(section, loadTestImages));

  $("#op-inpaint").addEventListener("click", guard(section, async () => {
    const form = inputsForm(["a"]);
    mask.markBox(); // a box typed but not marked yet counts too
    if (mask.isEmpty()) throw new ApiError(0, "paint the region to fill on the image, or type a box", "mask");
    form.append("mask", await mask.asBlob(), "mask.png");
    addField(form, "blend", "#blend");
    await run("inpaint", form, mask.overlayUrl());
  }));
  $("#op-swap").addEventListener("click", guard(section, async () => {
    const form = inputsForm(["a"]);
    form.append("to", $("#swap-to").value);
    await run("swap-class", form);
  }));
  $("#op-interpolate").addEventListener("click", guard(section, async () => {
    const form = inputsForm(["a", "b"]);
    addField(form, "steps", "#interp-steps");
    form.append("method", $("#interp-method").value);
    await run("interpolate", form);
  }));
  $("#job-cancel").addEventListener("click", guard(section, async () => {
    if (!job) return;
    job.cancelled = true;
    $("#job-message").textContent = "cancelling…";
    await api(`/v1/jobs/${encodeURIComponent(job.id)}`, { method: "DELETE" });
  }));
}

/** A new model: empty slots (slot A chosen), no test images, an empty mask at its size. */
export function onModel(model) {
  const classes = model.classes || [];
  $("#swap-to").replaceChildren(...classes.map((c, i) => el("option", { value: String(i),
    text: c === String(i) ? c : `${i}: ${c}` })));
  slots = { a: null, b: null };
  $("#slot-a").checked = true;
  mask.reset();
  renderSlots();
  $("#test-grid").replaceChildren();
  $("#test-more").hidden = true;
  testStart = 0;
  hideResult();
}
