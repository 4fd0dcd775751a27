/* Detect: images dropped on the drop zone or chosen with the file input are sent to POST
   /v1/detect; each gets a card with the probability that it was generated or edited, the verdict,
   the soft flag (blurred or resized: a weak verdict) and the heatmap of where it looks edited. */

import { ApiError, guard, json } from "./api.js";
import { $, el, png } from "./dom.js";

const section = $("#detect");
let shown = []; // object URLs of the uploads on the cards, freed when new cards replace them

const detect = guard(section, async (files) => {
  files = Array.from(files).filter((f) => f.type === "image/png" || f.type === "image/jpeg");
  if (!files.length) throw new ApiError(0, "choose PNG or JPEG images", "images");
  const form = new FormData();
  for (const file of files) form.append("images", file, file.name);
  const results = $("#detect-results");
  results.setAttribute("aria-busy", "true");
  try {
    const data = await json("/v1/detect", { method: "POST", form });
    shown.forEach((url) => URL.revokeObjectURL(url));
    shown = files.map((file) => URL.createObjectURL(file));
    results.replaceChildren(...data.results.map((r, i) => {
      const p = Number(r.probability);
      const name = r.name || files[i].name;
      return el("article", { class: `card ${r.verdict === "real" ? "real" : "fake"}` }, [
        el("div", { class: "card-images" }, [
          el("img", { src: shown[i], alt: `uploaded ${name}` }),
          ...(r.heatmap ? [el("img", { src: png(r.heatmap), alt: `where ${name} looks edited (heatmap)` })] : []),
        ]),
        el("h3", { text: name }),
        el("p", { class: "probability", text: `P(generated) ${(100 * p).toFixed(1)}%` }),
        el("meter", { min: 0, max: 1, value: p, "aria-label": "probability generated" }),
        ...(r.soft ? [el("p", { class: "soft", text: "soft: blurred or resized, so the verdict is weak" })] : []),
        el("p", { text: `verdict: ${r.verdict}` }),
      ]);
    }));
    if (data.threshold != null) {
      results.append(el("p", { class: "hint", text: `threshold ${Number(data.threshold).toFixed(2)}` }));
    }
  } finally {
    results.removeAttribute("aria-busy");
  }
});

export function init() {
  $("#detect-files").addEventListener("change", (event) => {
    detect(event.target.files);
    event.target.value = "";
  });
  const zone = $("#drop");
  for (const kind of ["dragenter", "dragover"]) {
    zone.addEventListener(kind, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const kind of ["dragleave", "drop"]) zone.addEventListener(kind, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    detect(event.dataTransfer.files);
  });
}
