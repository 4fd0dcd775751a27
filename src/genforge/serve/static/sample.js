/* Sample: a grid of images from a seed, a class and a temperature; an image's click reuses its seed.

   One request per image, each n=1 with seed = base + i (the server gathers concurrent requests
   into one forward pass). The server draws all of a request's images from one generator seeded by
   its seed, so image i of an n-image request is not image 0 of seed + i; asking each image with
   its own seed is what lets a click reuse exactly that image: it becomes image 0 of the grid
   sampled from its seed (the same seed gives the same image, batched with others or not). */

import { ApiError, guard, json } from "./api.js";
import { $, $$, el, png } from "./dom.js";
import { className, hasNeed, modelPath } from "./state.js";

const PAGE_MAX_IMAGES = 64; // images in one grid on this page (each its own request)
const section = $("#sample");
let onImage = () => {};

function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0] >>> 1;
}

/** The class chosen for sampling: its number, or null for "any". */
export function readLabel() {
  const value = $("#label").value;
  return hasNeed("classes") && value !== "" ? Number(value) : null;
}

const sample = guard(section, async () => {
  const count = Number($("#count").value);
  if (!Number.isInteger(count) || count < 1 || count > PAGE_MAX_IMAGES) {
    throw new ApiError(0, `between 1 and ${PAGE_MAX_IMAGES} images on this page`, "n");
  }
  if ($("#seed").value.trim() === "") $("#seed").value = String(randomSeed());
  const base = Number($("#seed").value);
  if (!Number.isSafeInteger(base) || base < 0) throw new ApiError(0, "a whole number ≥ 0", "seed");
  const temperature = Number($("#temperature").value);
  const label = readLabel();
  const grid = $("#grid");
  const cells = [];
  grid.replaceChildren();
  grid.setAttribute("aria-busy", "true");
  for (let i = 0; i < count; i++) {
    const cell = el("button", { type: "button", class: "cell", disabled: true, "aria-label": `seed ${base + i}, loading` });
    cells.push(cell);
    grid.append(cell);
  }
  const button = $("#sample-button");
  button.disabled = true;
  try {
    const answers = await Promise.allSettled(cells.map((_, i) => json(modelPath("/sample"), {
      method: "POST",
      json: { n: 1, seed: base + i, label, temperature, format: "json" },
    })));
    const failed = answers.find((a) => a.status === "rejected");
    if (failed) {
      grid.replaceChildren();
      throw failed.reason;
    }
    answers.forEach(({ value }, i) => {
      const seed = value.seed;
      const drawn = value.labels ? value.labels[0] : null;
      const what = drawn != null ? `, class ${className(drawn)}` : "";
      const cell = cells[i];
      cell.disabled = false;
      cell.dataset.seed = String(seed);
      cell.setAttribute("aria-label", `seed ${seed}${what}: use this seed`);
      cell.title = `seed ${seed}${what}`;
      cell.replaceChildren(el("img", { src: png(value.images[0]), alt: `sample, seed ${seed}${what}` }));
      cell.addEventListener("click", () => useImage({ seed, label, temperature }, cell));
    });
    onImage({ seed: base, label, temperature }); // the sliders start from the grid's first image
  } finally {
    button.disabled = false;
    grid.removeAttribute("aria-busy");
  }
});

function useImage(image, cell) {
  $("#seed").value = String(image.seed);
  for (const node of $$("#grid .cell")) node.classList.toggle("chosen", node === cell);
  onImage(image);
}

/** Wires the form; `imageChosen({seed, label, temperature})` hears of the image to start from. */
export function init(imageChosen) {
  onImage = imageChosen;
  $("#sample-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sample();
  });
}

/** A new model: its classes in the select, an empty grid. */
export function onModel(model) {
  const classes = model.classes || [];
  $("#label").replaceChildren(el("option", { value: "", text: "any (random)" }),
    ...classes.map((c, i) => el("option", { value: String(i), text: c === String(i) ? c : `${i}: ${c}` })));
  $("#grid").replaceChildren();
}
