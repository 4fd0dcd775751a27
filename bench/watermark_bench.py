"""The learned watermark measured: bit accuracy, true-positive rate at a false-positive rate of 1e-6,
false positives on real images, and what marking costs the image (PSNR).

    python bench/watermark_bench.py [--datasets mnist,fashion-mnist,emoji-32] [--minutes 30] [--marked 2000]
        [--real 10000] [--regenerate NAME=RUN_DIR] [--finetune NAME=RUN_DIR] [--fid-n 10000]
        [--finetune-steps N] [--threads T] [--nice N] [--out bench/out/watermark] [--write-md BENCHMARKS.md]

For each data set (`emoji-32` is emoji at 32x32, `emoji` its own 64x64) a watermark is trained
through the CLI (`genforge watermark train --minutes M`, the library's default settings, bits
included: 32 at 28x28, 48 larger) into <out>/<name>, or reused if one is there. Then, in this
process: `--marked` test images are each marked with their own random key, and each attack of
genforge.provenance.watermark.distortions.ATTACKS is applied (clean; a real Pillow JPEG round trip
at quality 75; Gaussian noise of standard deviation 0.05; Gaussian blur sigma 1; halving and
doubling the size; a crop keeping 75% of the area at a random place, read at its own size at
every place it fits, its p-value multiplied by the places tried). An image counts as a true
positive when its p-value (binomial(K, 1/2) tail) is at most 1e-6. False positives: `--real`
real images, unmarked, each read against a random key, counted at the same threshold; where the
test split holds fewer (emoji: 738), the training split's images are added, then each image is
read against further keys until `--real` readings are made (the table says how many images).

Targets (issue 32): at least 32 bits at 28x28 and 48 at 32x32 and 64x64; TPR at least 0.95 clean
and at least 0.80 after JPEG and after noise; no false positive at the threshold on 10,000 real
images. The rest is reported as measured.

What an attacker can do (a second table): a left-right flip; averaging many images marked with one
key to estimate the mark and subtract it; regenerating the marked images through a genforge
autoencoder (`--regenerate emoji-32=RUN_DIR`, only where given). With `--finetune NAME=RUN_DIR`, a
third: the run keyed by `genforge watermark finetune` (defaults) and what marking costs in FID.

Settings. The library's defaults are what this measures: width 32, strength 0.1, batch 64, lr 1e-3
along a cosine, all seven training distortions, the image term gated on the reading (train.py),
image_weight 10 for grey images and 60 for colour (chroma_weight 4), 32 bits at 28x28 and 48 larger,
and `--minutes 30` here. They were chosen from short trainings on the shared 2-core machine, one
torch thread, niced behind the other work (so a minute bought far fewer steps than on a free
machine), each measured with this script's attacks on the first 512-1000 test images (all 738 for
emoji), false positives on the same images unmarked:

| trial | steps | PSNR | clean | JPEG 75 | noise | blur | resize | crop | FP |
|---|---|---|---|---|---|---|---|---|---|
| mnist 32 bits, iw 20, image term ramped from the start, 4 min | 1165 | 30.1 | 1.00 | 1.00 | 0.87 | 1.00 | 1.00 | 0.91 | 0/512 |
| mnist, iw 50, image term timed (from 1/5 of the budget), 4 min | 634 | 32.3 | 1.00 | 1.00 | 0.36 | 1.00 | 0.99 | 0.87 | 0/512 |
| mnist, iw 20, gated on the reading, 10 min | 2349 | 30.4 | 1.00 | 1.00 | 0.81 | 1.00 | 0.99 | 0.98 | 0/1000 |
| mnist, iw 10, gated, 8 min | 1969 | 28.5 | 1.00 | 1.00 | 0.94 | 1.00 | 0.99 | 0.99 | 0/1000 |
| fashion-mnist, iw 10, gated, 8 min | 2029 | 27.1 | 1.00 | 1.00 | 0.98 | 0.99 | 0.94 | 0.96 | 0/1000 |
| emoji-32 48 bits, iw 20, timed, 4 min | 591 | 25.6 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 0/512 |
| emoji-32 48 bits, iw 20, chroma 2, timed, 10 min | 2643 | 28.8 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 0/738 |
| emoji-32 48 bits, iw 60, chroma 4, gated, 10 min | 2268 | 31.6 | 1.00 | 0.96 | 1.00 | 1.00 | 1.00 | 1.00 | 0/738 |
| emoji 64x64 32 bits (scale 4), iw 60, 6 min | 752 | 35.9 | 1.00 | 0.98 | 1.00 | 1.00 | 1.00 | 0.96 | 0/738 |
| emoji 64x64 48 bits (scale 4), iw 60, 6 min, first 300 test images | 858 | 35.0 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 0/300 |

(cells: TPR at FPR 1e-6; iw: image_weight.) Gaussian noise is the attack nearest its target on
grey images, and a stronger image term trades it away quickly (iw 50: 0.36), hence 10 for grey; colour marks had
robustness to spare at iw 20 but a visible coloured pattern, hence 60 with colour changes
weighted 4 times. An image term timed by the budget silenced the embedder when a busy machine
gave too few steps (emoji-32 at iw 60: bits at chance after 323 steps in 10 minutes; the first
version, ramped from the start, did the same to emoji at iw 20), hence the gate on the reading.
30 minutes on a free machine is several times the steps of these trials; PSNR is what more steps
improved most.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import genforge
from genforge.data import load_dataset
from genforge.provenance.watermark import load_watermark, p_value, threshold
from genforge.provenance.watermark.distortions import ATTACKS, CROP_AREA, NOISE_STD
from genforge.provenance.watermark.evaluate import agreement, measure
from genforge.provenance.watermark.read import embed_bits

from common import block_header, write_block

MD_START, MD_END = "<!-- watermark:start -->", "<!-- watermark:end -->"
FPR = 1e-6
TARGET_BITS = {28: 32, 32: 48, 64: 48}


def parse_name(name: str) -> tuple[str, int | None]:
    """'emoji-32' -> ('emoji', 32); 'fashion-mnist' -> ('fashion-mnist', None)."""
    base, _, size = name.rpartition("-")
    return (base, int(size)) if size.isdigit() and base else (name, None)


def train(name: str, minutes: float, out: Path, seed: int, nice: int, threads: int | None) -> Path:
    """Trains the watermark of one data set through the CLI, unless <out>/<name> holds one."""
    mark = out / name
    if (mark / "config.json").exists():
        print(f"{mark} is trained already; reusing it", flush=True)
        return mark
    dataset, size = parse_name(name)
    cmd = [sys.executable, "-m", "genforge", "watermark", "train", "--dataset", dataset, "--minutes", str(minutes),
           "--seed", str(seed), "--out", str(mark), "--no-progress"]
    if size:
        cmd += ["--image-size", str(size)]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    env = dict(os.environ)
    if threads:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    print(f"training {name} for {minutes} minutes", flush=True)
    with open(out / f"{name}.log", "w") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return mark


def real_images(dataset: str, size: int | None, n: int) -> torch.Tensor:
    """Up to n real images: the test split, then the training split if the test split is smaller."""
    images = load_dataset(dataset, "test", image_size=size).images[:n]
    if len(images) < n:
        extra = load_dataset(dataset, "train", image_size=size).images[: n - len(images)]
        images = torch.cat([images, extra])
    return images


def false_positives(mark, images: torch.Tensor, readings: int, seed: int) -> dict:
    """Unmarked real images read against random keys, `readings` times in all (cycling through the
    images with new keys if there are fewer): how many are called marked at FPR, and the largest
    agreement seen."""
    generator = torch.Generator().manual_seed(seed)
    found, most, done, agree_sum = 0, 0, 0, 0
    needed = threshold(mark.bits, FPR)
    while done < readings:
        batch = images[: readings - done].float() / 255
        bits = torch.randint(2, (len(batch), mark.bits), generator=generator).float()
        agreed, _ = agreement(batch, mark, bits)
        found += int((agreed >= needed).sum())
        most = max(most, int(agreed.max()))
        agree_sum += int(agreed.sum())
        done += len(batch)
    return {"readings": done, "images": len(images), "false_positives": found, "max_agree": most,
            "min_p_value": p_value(most, mark.bits), "bit_agreement": round(agree_sum / (done * mark.bits), 4)}


def _tpr(images: torch.Tensor, mark, bits: torch.Tensor) -> dict:
    agreed, tried = agreement(images, mark, bits)
    return {"bit_accuracy": round(float(agreed.float().mean()) / mark.bits, 4),
            "tpr": round(float((agreed >= threshold(mark.bits, FPR, tried)).float().mean()), 4), "images": len(images)}


def attacker(mark, images: torch.Tensor, seed: int, regenerate: str | None = None, labels=None) -> dict:
    """What an attacker can do, each measured as bit accuracy and TPR at FPR 1e-6:
    - flip: the marked images mirrored left to right (not a training distortion);
    - average: one key on the first half of the images; the attacker averages those marked images,
      subtracts the average of the other half's (unmarked, real) images to estimate the mark, and
      subtracts that estimate from each marked image;
    - regenerate: the marked images encoded and decoded by a genforge autoencoder (`regenerate`,
      a run directory), which redraws them from its own latent codes."""
    generator = torch.Generator().manual_seed(seed + 2)
    x = images.float() / 255
    bits = torch.randint(2, (len(x), mark.bits), generator=generator).float()
    marked = embed_bits(x, mark, bits)
    out = {"flip": _tpr(marked.flip(-1), mark, bits)}
    half = len(x) // 2
    key = bits[:1].expand(half, -1)
    same = embed_bits(x[:half], mark, key)
    estimate = same.mean(0, keepdim=True) - x[half:2 * half].mean(0, keepdim=True)
    out["average"] = _tpr(((same - estimate).clamp(0, 1) * 255).round() / 255, mark, key)
    if regenerate:
        model = genforge.load(regenerate)
        lab = labels[:len(x)] if model.module.is_conditional else None
        regen = torch.cat([model.decode(model.encode(marked[i:i + 500], None if lab is None else lab[i:i + 500]),
                                        None if lab is None else lab[i:i + 500]).cpu()
                           for i in range(0, len(marked), 500)])
        out["regenerate"] = {**_tpr((regen.clamp(0, 1) * 255).round() / 255, mark, bits), "run": regenerate}
    return out


def measure_one(name: str, mark_dir: Path, marked_n: int, real_n: int, seed: int, regenerate: str | None) -> dict:
    dataset, size = parse_name(name)
    mark = load_watermark(mark_dir)
    test_set = load_dataset(dataset, "test", image_size=size)
    test = test_set.images[:marked_n]
    started = time.perf_counter()
    result = measure(mark, test, seed=seed, attacks=ATTACKS, fpr=FPR)
    result["real"] = false_positives(mark, real_images(dataset, size, real_n), real_n, seed + 1)
    result["attacker"] = attacker(mark, test, seed, regenerate, test_set.labels)
    info = json.loads((mark_dir / "config.json").read_text())
    result |= {"name": name, "image_shape": list(mark.image_shape), "training": info["training"],
               "mark": info["mark"], "measure_seconds": round(time.perf_counter() - started, 1)}
    return result


def keyed_model(name: str, mark_dir: Path, run: str, out: Path, n: int, seed: int, steps: int | None) -> dict:
    """A key in the model (`genforge watermark finetune`, the library's defaults) and its cost: FID,
    precision and recall of n samples (the shipped feature network, against the test split) of the
    original model, of the same samples marked by the embedder, and of the fine-tuned model from the
    same codes; the share of the keyed samples read as marked, clean and after JPEG quality 75."""
    from genforge.metrics.evaluate import evaluate_images
    from genforge.provenance.watermark import embed, key_to_bits, random_key
    from genforge.provenance.watermark.distortions import attack
    from genforge.provenance.watermark.finetune import finetune_run
    keyed_dir = out / f"{name}-keyed"
    if not (keyed_dir / "config.json").exists():
        print(f"fine-tuning {run} with the {name} watermark", flush=True)
        finetune_run(run, mark_dir, random_key(load_watermark(mark_dir).bits), keyed_dir, seed=seed,
                     **({"steps": steps} if steps else {}))
    tuned = json.loads((keyed_dir / "config.json").read_text())["watermark"]
    dataset = json.loads((Path(run) / "config.json").read_text())["data"]["dataset"]
    original, keyed = genforge.load(run), genforge.load(keyed_dir)
    mark = load_watermark(mark_dir)
    before, after = original.sample(n, seed=seed), keyed.sample(n, seed=seed)
    embedded = embed(before, mark, tuned["key"])
    bits = key_to_bits(tuned["key"], mark.bits).expand(n, -1)
    result = {"run": run, "steps": tuned["steps"], "keep_weight": tuned["keep_weight"],
              "keyed_clean": _tpr(attack(after, "clean"), mark, bits),
              "keyed_jpeg75": _tpr(attack(after, "jpeg75"), mark, bits)}
    for label, images in (("original", before), ("embedded", embedded), ("keyed", after)):
        metrics = evaluate_images(images, dataset)
        result[label] = {k: round(float(metrics[k]), 4) for k in ("fid", "precision", "recall")}
    return result


def targets_met(r: dict) -> list[str]:
    """'met' / 'missed' for each target of the issue, in words."""
    size = r["image_shape"][1]
    checks = [(f">= {TARGET_BITS.get(size, 48)} bits", r["bits"] >= TARGET_BITS.get(size, 48)),
              ("TPR clean >= 0.95", r["clean"]["tpr"] >= 0.95),
              ("TPR JPEG 75 >= 0.80", r["jpeg75"]["tpr"] >= 0.80),
              ("TPR noise >= 0.80", r["noise"]["tpr"] >= 0.80),
              (f"0 false positives in {r['real']['readings']:,}", r["real"]["false_positives"] == 0)]
    return [f"{what}: {'met' if ok else 'MISSED'}" for what, ok in checks]


def markdown(results: list[dict], args) -> str:
    notes = [f"each data set: a watermark trained {args.minutes} min (`genforge watermark train`), "
             f"{args.marked} test images marked with random keys (fewer where the test split is smaller), "
             f"read at FPR {FPR:g} by the binomial test",
             f"attacks: JPEG quality 75 (Pillow), Gaussian noise std {NOISE_STD} ({NOISE_STD * 255:.0f} levels), "
             f"blur sigma 1, 2x down and up (bilinear), a crop keeping {CROP_AREA:.0%} of the area read at every "
             "place it fits (p-value times the places tried)",
             "cells: bit accuracy / TPR (share of marked images read as marked)"]
    lines = block_header(MD_START, "Watermark: bit accuracy and TPR at FPR 1e-6", *notes)
    lines += ["| data | bits (needed) | steps | PSNR dB | " + " | ".join(ATTACKS)
              + " | false positives (readings, images) |",
              "|---|---|---|---|" + "---|" * len(ATTACKS) + "---|"]
    for r in results:
        c, h, w = r["image_shape"]
        cells = [f"{r[a]['bit_accuracy']:.3f} / {r[a]['tpr']:.3f}" for a in ATTACKS]
        fp = r["real"]
        lines.append(f"| {r['name']} {h}x{w}x{c} | {r['bits']} ({r['threshold_bits']}) | {r['training']['steps']} | "
                     f"{r['psnr_db']} | " + " | ".join(cells)
                     + f" | {fp['false_positives']} ({fp['readings']:,}, {fp['images']:,}) |")
    lines += ["", "What an attacker can do (bit accuracy / TPR): a left-right flip; averaging: half the marked "
              "images carry one key, the attacker subtracts their mean minus the mean of real unmarked images; "
              "regeneration: encoded and decoded by a genforge autoencoder of the same data.", "",
              "| data | flip | averaging | regeneration |", "|---|---|---|---|"]
    for r in results:
        a = r["attacker"]
        regen = (f"{a['regenerate']['bit_accuracy']:.3f} / {a['regenerate']['tpr']:.3f} (`{a['regenerate']['run']}`)"
                 if "regenerate" in a else "not measured")
        lines.append(f"| {r['name']} | {a['flip']['bit_accuracy']:.3f} / {a['flip']['tpr']:.3f} | "
                     f"{a['average']['bit_accuracy']:.3f} / {a['average']['tpr']:.3f} "
                     f"({a['average']['images']} images with one key) | {regen} |")
    keyed = [r for r in results if "keyed_model" in r]
    if keyed:
        lines += ["", f"Keys in the model (`genforge watermark finetune`, defaults) and what marking costs: FID, "
                  f"precision, recall of {args.fid_n} samples against the test split (shipped feature network); "
                  "'embedded': the original's samples marked by the embedder; keyed TPR at FPR 1e-6, "
                  "clean / after JPEG 75.", "",
                  "| data | run | steps, keep_weight | FID original | FID embedded | FID keyed (change) | "
                  "precision / recall original | keyed | keyed TPR |", "|---|---|---|---|---|---|---|---|---|"]
        for r in keyed:
            k = r["keyed_model"]
            o, e, t = k["original"], k["embedded"], k["keyed"]
            lines.append(f"| {r['name']} | `{k['run']}` | {k['steps']}, {k['keep_weight']:g} | {o['fid']:.2f} | "
                         f"{e['fid']:.2f} | {t['fid']:.2f} ({t['fid'] / o['fid'] - 1:+.0%}) | "
                         f"{o['precision']:.3f} / {o['recall']:.3f} | {t['precision']:.3f} / {t['recall']:.3f} | "
                         f"{k['keyed_clean']['tpr']:.3f} / {k['keyed_jpeg75']['tpr']:.3f} |")
    lines.append("")
    for r in results:
        fp = r["real"]
        lines.append(f"- {r['name']}: " + "; ".join(targets_met(r))
                     + f". Unmarked images agreed on {fp['bit_agreement']:.3f} of the bits on average, at most "
                     f"{fp['max_agree']} of {r['bits']} (p = {fp['min_p_value']:.2g}).")
    lines += ["", MD_END]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="mnist,fashion-mnist,emoji-32", help="comma list; NAME-SIZE for a size "
                   "other than the data set's own (emoji-32)")
    p.add_argument("--minutes", type=float, default=30, help="training time of each watermark")
    p.add_argument("--marked", type=int, default=2000, help="test images marked and attacked per data set")
    p.add_argument("--real", type=int, default=10000, help="readings of unmarked real images for false positives")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads of training and measuring (default: torch's)")
    p.add_argument("--nice", type=int, default=0, help="niceness of the trainings (negative: root only)")
    p.add_argument("--out", type=Path, default=Path("bench/out/watermark"))
    p.add_argument("--regenerate", action="append", default=[], metavar="NAME=RUN",
                   help="an autoencoder run to regenerate NAME's marked images with (e.g. emoji-32=runs/vae); repeat")
    p.add_argument("--finetune", action="append", default=[], metavar="NAME=RUN",
                   help="a trained run of NAME's data and size to key with `watermark finetune` and measure "
                   "(FID before and after); repeat")
    p.add_argument("--fid-n", type=int, default=10000, help="samples for the FIDs of --finetune")
    p.add_argument("--finetune-steps", type=int, help="steps of --finetune (default: the library's, 2000)")
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    regenerate = dict(pair.split("=", 1) for pair in args.regenerate)
    finetune = dict(pair.split("=", 1) for pair in args.finetune)
    results = []
    for name in args.datasets.split(","):
        mark = train(name, args.minutes, args.out, args.seed, args.nice, args.threads)
        result = measure_one(name, mark, args.marked, args.real, args.seed, regenerate.get(name))
        if name in finetune:
            result["keyed_model"] = keyed_model(name, mark, finetune[name], args.out, args.fid_n, args.seed,
                                                args.finetune_steps)
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=2))
        print(json.dumps({k: result[k] for k in ("name", "bits", "psnr_db", *ATTACKS, "real", "attacker",
                                                 "keyed_model") if k in result}), flush=True)
        results.append(result)
    block = markdown(results, args)
    print(block)
    if args.write_md:
        write_block(args.write_md, block, MD_START, MD_END)


if __name__ == "__main__":
    main()
