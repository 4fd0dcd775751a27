/* The inpainting mask: painted on a canvas scaled up from the model's size, with the mouse, a
   finger or a pen (pointer events), or from the keyboard (arrows move a brush outline, Space or
   Enter paints, Delete erases), or typed as a box x0,y0,x1,y1. Kept at the model's size, one
   value per pixel (1 = missing), and sent as a PNG of that size, white = missing. */

import { ApiError, clearErrors, guard } from "./api.js";
import { $, el } from "./dom.js";
import { imageSize } from "./state.js";

const canvas = $("#mask-canvas");
const context = canvas.getContext("2d");
const cursor = { x: 0, y: 0, shown: false };
let mask = new Uint8Array(28 * 28);
let background = null; // the image in slot A, drawn under the mask
let last = null; // the last pixel of a stroke

/** An empty mask at the model's size (on a canvas about 280-340 px wide). */
export function reset() {
  const { h, w } = imageSize();
  const scale = Math.max(1, Math.ceil(280 / w));
  canvas.width = w * scale;
  canvas.height = h * scale;
  mask = new Uint8Array(h * w);
  draw();
}

/** The image to paint over (an address), or null. */
export function setBackground(url) {
  background = null;
  if (url) {
    background = new Image();
    background.onload = draw;
    background.src = url;
  }
  draw();
}

export const isEmpty = () => !mask.some(Boolean);

function draw() {
  const { h, w } = imageSize();
  const sx = canvas.width / w;
  const sy = canvas.height / h;
  context.imageSmoothingEnabled = false;
  context.fillStyle = "#f4f4f4";
  context.fillRect(0, 0, canvas.width, canvas.height);
  if (background && background.complete && background.naturalWidth) {
    context.drawImage(background, 0, 0, canvas.width, canvas.height);
  } else {
    context.fillStyle = "#5c6670";
    context.font = "15px system-ui, sans-serif";
    context.textAlign = "center";
    context.fillText("pick or upload an image (slot A)", canvas.width / 2, canvas.height / 2);
  }
  context.fillStyle = "rgba(255, 40, 90, 0.7)";
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (mask[y * w + x]) context.fillRect(x * sx, y * sy, sx, sy);
    }
  }
  if (cursor.shown) {
    const r = Number($("#brush").value);
    const x0 = cursor.x - Math.floor((r - 1) / 2);
    const y0 = cursor.y - Math.floor((r - 1) / 2);
    context.strokeStyle = "#1a5fb4";
    context.lineWidth = 2;
    context.strokeRect(x0 * sx + 1, y0 * sy + 1, r * sx - 2, r * sy - 2);
  }
}

function paintAt(x, y, value = 1) {
  const { h, w } = imageSize();
  const r = Number($("#brush").value);
  const x0 = x - Math.floor((r - 1) / 2);
  const y0 = y - Math.floor((r - 1) / 2);
  for (let yy = Math.max(0, y0); yy < Math.min(h, y0 + r); yy++) {
    for (let xx = Math.max(0, x0); xx < Math.min(w, x0 + r); xx++) mask[yy * w + xx] = value;
  }
}

function pixelOf(event) {
  const { h, w } = imageSize();
  const rect = canvas.getBoundingClientRect();
  return {
    x: Math.min(w - 1, Math.max(0, Math.floor(((event.clientX - rect.left) / rect.width) * w))),
    y: Math.min(h - 1, Math.max(0, Math.floor(((event.clientY - rect.top) / rect.height) * h))),
  };
}

/** Marks the box typed in the box field ("x0,y0,x1,y1" in the model's pixels, x1/y1 excluded, as
    `genforge edit --box`); false when the field is empty, ApiError (field "box") when it is wrong. */
export function markBox() {
  const text = $("#box").value.trim();
  if (!text) return false;
  const { h, w } = imageSize();
  const values = text.split(",").map((v) => Number(v.trim()));
  const [x0, y0, x1, y1] = values;
  if (values.length !== 4 || !values.every(Number.isInteger)
      || !(x0 >= 0 && x0 < x1 && x1 <= w && y0 >= 0 && y0 < y1 && y1 <= h)) {
    throw new ApiError(0, `write x0,y0,x1,y1 inside the ${w}×${h} image with x0 < x1 and y0 < y1, e.g. 7,7,21,21`,
      "box");
  }
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) mask[y * w + x] = 1;
  draw();
  return true;
}

// the mask at the model's size: `colour(missing)` gives each pixel's RGBA
function small(colour) {
  const { h, w } = imageSize();
  const picture = el("canvas", { width: w, height: h });
  const c = picture.getContext("2d");
  const pixels = c.createImageData(w, h);
  mask.forEach((m, i) => pixels.data.set(colour(Boolean(m)), i * 4));
  c.putImageData(pixels, 0, 0);
  return picture;
}

/** What the server reads: a PNG of the image's size, white = missing. */
export function asBlob() {
  const picture = small((m) => (m ? [255, 255, 255, 255] : [0, 0, 0, 255]));
  return new Promise((resolve) => picture.toBlob(resolve, "image/png"));
}

/** The hole alone, translucent on transparent: laid over an input to show what was filled. */
export const overlayUrl = () => small((m) => (m ? [255, 40, 90, 180] : [0, 0, 0, 0])).toDataURL("image/png");

/** Wires the canvas and the mask controls; errors (a wrong box) shown in `section`. */
export function init(section) {
  // pointer events cover the mouse, touch and pens alike; a stroke paints the line between samples
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    last = pixelOf(event);
    paintAt(last.x, last.y);
    draw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const p = pixelOf(event);
    const steps = Math.max(Math.abs(p.x - last.x), Math.abs(p.y - last.y), 1);
    for (let s = 1; s <= steps; s++) {
      paintAt(Math.round(last.x + ((p.x - last.x) * s) / steps), Math.round(last.y + ((p.y - last.y) * s) / steps));
    }
    last = p;
    draw();
  });
  const endStroke = () => { last = null; };
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  canvas.addEventListener("focus", () => { cursor.shown = true; draw(); });
  canvas.addEventListener("blur", () => { cursor.shown = false; draw(); });
  canvas.addEventListener("keydown", (event) => {
    const { h, w } = imageSize();
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[event.key]) {
      const [dx, dy] = moves[event.key];
      cursor.x = Math.min(w - 1, Math.max(0, cursor.x + dx));
      cursor.y = Math.min(h - 1, Math.max(0, cursor.y + dy));
      if (event.shiftKey) paintAt(cursor.x, cursor.y);
    } else if (event.key === " " || event.key === "Enter") {
      paintAt(cursor.x, cursor.y);
    } else if (event.key === "Delete" || event.key === "Backspace") {
      paintAt(cursor.x, cursor.y, 0);
    } else {
      return;
    }
    event.preventDefault();
    draw();
  });

  $("#brush").addEventListener("input", () => {
    $("#brush-value").textContent = $("#brush").value;
    draw();
  });
  $("#mask-clear").addEventListener("click", () => {
    mask.fill(0);
    clearErrors(section);
    draw();
  });
  $("#box-apply").addEventListener("click", guard(section, async () => { markBox(); }));
}
