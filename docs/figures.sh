#!/usr/bin/env bash
# Re-makes the README's pictures of edits and detection from trained runs, with the CLI only.
#   docs/figures.sh RUNS_DIR DETECTOR_DIR [FASHION_RUNS_DIR]
# RUNS_DIR holds MNIST runs named beta-vae-s0, cvae-gan-s0, sngan-s0, cgan-s0 (bench/families.py writes them);
# DETECTOR_DIR is a trained detector (bench/detect_bench.py or `genforge detect train`);
# FASHION_RUNS_DIR, if given, the same runs on Fashion-MNIST.
# FIGURES=heatmaps re-makes the detector's heatmaps only (a new detector, the same edit pictures),
# FIGURES=sheet the contact sheet of a judged folder only.
set -euo pipefail
runs=${1:?RUNS_DIR}
det=${2:?DETECTOR_DIR}
fashion=${3:-}
out=docs/images
edit="genforge edit --no-progress"
mkdir -p "$out" /tmp/genforge-figures

figures=${FIGURES:-all}
if [ "$figures" = all ]; then
$edit "$runs/beta-vae-s0" --input mnist:test:0-15 --op reconstruct --out "$out/edit-reconstruct.png"
$edit "$runs/beta-vae-s0" --input mnist:test:0-7 --op interpolate --steps 10 --out "$out/edit-interpolate.png"
$edit "$runs/beta-vae-s0" --input mnist:test:0-15 --op attribute --to 8 --out "$out/edit-attribute-8.png"
$edit "$runs/beta-vae-s0" --input mnist:test:0-15 --op attribute --to thickness --strength 2 \
  --out "$out/edit-attribute-thickness.png"
$edit "$runs/cvae-gan-s0" --input mnist:test:0-15 --op swap-class --to 3 --out "$out/edit-swap-class-3.png"
$edit "$runs/beta-vae-s0" --input mnist:test:0-15 --op inpaint --box 7,7,21,21 --out "$out/edit-inpaint.png"
$edit "$runs/cgan-s0" --input mnist:test:0-15 --op inpaint --box 0,14,28,28 --out "$out/edit-inpaint-cgan.png"
$edit "$runs/cgan-s0" --input mnist:test:0-15 --op inpaint --box 0,14,28,28 --samples 4 \
  --out "$out/edit-inpaint-cgan-mean4.png"
$edit "$runs/sngan-s0" --input mnist:test:0-15 --op reconstruct --hybrid --out "$out/edit-gan-inversion.png"
$edit "$runs/sngan-s0" --input mnist:test:0-0 --op directions --method sefa --steps 9 \
  --out "$out/edit-directions-sefa.png"
if [ -n "$fashion" ]; then
  $edit "$fashion/cvae-gan-s0" --input fashion-mnist:test:0-15 --op swap-class --to 7 \
    --out "$out/edit-fashion-swap-class-7.png"
  $edit "$fashion/beta-vae-s0" --input fashion-mnist:test:0-15 --op inpaint --box 7,7,21,21 \
    --out "$out/edit-fashion-inpaint.png"
fi
fi

# Heatmaps: a few real digits, a few with a region inpainted by the VAE (blended), a few samples.
if [ "$figures" = all ] || [ "$figures" = heatmaps ]; then
$edit "$runs/beta-vae-s0" --input mnist:test:100-103 --op inpaint --box 4,4,18,18 --blend 1 \
  --out /tmp/genforge-figures/inpainted.npz
genforge sample "$runs/sngan-s0" --n 4 --seed 7 --out /tmp/genforge-figures/sampled.npz
genforge detect "$det" mnist:test:100-103 /tmp/genforge-figures/inpainted.npz /tmp/genforge-figures/sampled.npz \
  --heatmap /tmp/genforge-figures/heat --json /tmp/genforge-figures/verdicts.json
python - <<'EOF'
# One strip of the overlays, in the order judged, for the README.
import json

import numpy as np
from PIL import Image

from genforge.cli.detect import heatmap_stem

verdicts = json.load(open("/tmp/genforge-figures/verdicts.json"))["images"]
tiles = [np.asarray(Image.open(f"/tmp/genforge-figures/heat/{heatmap_stem(v['image'])}.png").convert("RGB"))
         for v in verdicts]
Image.fromarray(np.concatenate(tiles, axis=1)).save("docs/images/detect-heatmaps.png")
print("probabilities:", " ".join(f"{v['probability']:.2f}" for v in verdicts))
EOF
fi

# Contact sheet: real digits, three of them resized to half and back as a file that travelled
# would be, VAE inpaintings and GAN samples, judged at once.
if [ "$figures" = all ] || [ "$figures" = sheet ]; then
mkdir -p /tmp/genforge-figures/resized
python - <<'EOF'
from PIL import Image

from genforge.data import load_dataset

for i in (210, 211, 212):
    digit = Image.fromarray(load_dataset("mnist", "test").images[i, 0].numpy())
    digit.resize((14, 14), Image.BILINEAR).resize((28, 28), Image.BILINEAR).save(
        f"/tmp/genforge-figures/resized/test-{i}.png")
EOF
$edit "$runs/beta-vae-s0" --input mnist:test:206-209 --op inpaint --box 4,4,18,18 --blend 1 \
  --out /tmp/genforge-figures/inpainted-sheet.npz
genforge sample "$runs/cgan-s0" --n 4 --seed 7 --out /tmp/genforge-figures/sampled-sheet.npz
genforge detect "$det" mnist:test:200-205 /tmp/genforge-figures/resized /tmp/genforge-figures/inpainted-sheet.npz \
  /tmp/genforge-figures/sampled-sheet.npz --sheet "$out/detect-sheet.png"
fi
