/* An edit's answer on the page: each input beside its result with what the classifier reads
   (and, for inpainting, the hole that was filled), or a path's frames as an animated strip with
   play/pause and a frame slider (paused from the start when the reader asks for reduced motion),
   the GIF to download, and the summary line `genforge edit` prints. */

import { $, el, png } from "./dom.js";

const player = { frames: [], index: 0, timer: null };

const reading = (list, i) => (list && list[i] != null ? String(list[i]) : null);

/** Shows `result` (the edit JSON); `hole` is the mask overlay sent with an inpainting, or null. */
export function showResult(result, hole) {
  $("#edit-result").hidden = false;
  stop();
  const pairs = $("#edit-images");
  pairs.replaceChildren();
  const frames = result.frames && result.frames.length ? result.frames[0] : null;
  $("#player").hidden = !frames;
  if (frames) {
    player.frames = frames.map(png);
    const strip = $("#player-strip");
    strip.replaceChildren(...player.frames.map((src, i) => el("img", { src, alt: `frame ${i + 1}` })));
    if (result.gif) {
      strip.append(el("a", { href: `data:image/gif;base64,${result.gif}`, download: `${result.op}.gif`, text: "GIF" }));
    }
    $("#player-frame").max = String(player.frames.length - 1);
    show(0);
    if (!matchMedia("(prefers-reduced-motion: reduce)").matches) play();
  } else {
    (result.images || []).forEach((b64, i) => {
      const before = reading(result.reads_before, i);
      const after = reading(result.reads_after, i);
      const input = result.inputs && result.inputs[i];
      const filled = result.op === "inpaint" && input && hole
        ? [el("figure", { class: "hole" }, [el("img", { src: png(input), alt: "" }),
          el("img", { src: hole, alt: `input ${i + 1} with the region to fill marked` }),
          el("figcaption", { text: "to fill" })])] : [];
      pairs.append(el("div", { class: "pair" }, [
        ...(input ? [el("figure", {}, [el("img", { src: png(input), alt: `input ${i + 1}` }),
          el("figcaption", { text: before ? `before: reads ${before}` : "before" })])] : []),
        ...filled,
        el("figure", {}, [el("img", { src: png(b64), alt: `result ${i + 1}`, class: "edited" }),
          el("figcaption", { text: after ? `after: reads ${after}` : "after" })]),
      ]));
    });
  }
  $("#edit-summary").textContent = result.summary || ""; // as `genforge edit` prints it (realism included)
  $("#edit-result").dataset.op = result.op;
}

export function hideResult() {
  stop();
  $("#edit-result").hidden = true;
}

function show(i) {
  player.index = i;
  $("#player-image").src = player.frames[i];
  $("#player-image").alt = `interpolation, frame ${i + 1} of ${player.frames.length}`;
  $("#player-frame").value = String(i);
}

function play() {
  stop();
  player.timer = setInterval(() => show((player.index + 1) % player.frames.length), 150);
  $("#player-toggle").textContent = "Pause";
  $("#player-toggle").setAttribute("aria-pressed", "true");
}

function stop() {
  if (player.timer) clearInterval(player.timer);
  player.timer = null;
  $("#player-toggle").textContent = "Play";
  $("#player-toggle").setAttribute("aria-pressed", "false");
}

export function init() {
  $("#player-toggle").addEventListener("click", () => (player.timer ? stop() : play()));
  $("#player-frame").addEventListener("input", () => {
    stop();
    show(Number($("#player-frame").value));
  });
}
