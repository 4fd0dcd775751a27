"""One detector on the given runs with a chosen width and edit-map weight: a quick trial of the
detector's settings, cheaper than the whole detect_bench.py (no baselines, perturbations or
held-out groups).

    python bench/trials/detect_trial.py --runs RUN_DIR... [--edits NAME=FILE.npz ...] [--width 16]
                                 [--edit-weight 10] [--minutes 4] [--threads 1] [--perturb] [--set FIELD=VALUE ...]
                                 [--train-runs RUN_DIR...] [--by-size]

Prints the AUC of every source and the pixel AUC of the edit maps on each partly edited source
and on all pastes together (against either definition of a paste's mask, fakes.py), measured
like detect_bench.py (unseen test images and seeds); with --perturb also the mean and lowest
AUC over the sources after each perturbation, with --by-size the AUC on pastes by how many
pixels they changed, clean and perturbed. `--set steps=N --minutes 1000` gives trials that
run side by side the same number of steps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import genforge
from genforge.cli.train import parse_overrides
from genforge.data import load_dataset, load_slice
from genforge.detect import DetectTrainConfig, train_detector
from genforge.detect.fakes import EDIT_TRUTHS
from genforge.detect.augment import PERTURBATIONS, quantise
from genforge.detect.evaluate import detector_scorer, localisation, per_source, under_perturbations

# The suite's shared code (common.py) and scripts live one folder up, in bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detect_bench import by_edit_size, held_out_fakes


def map_scorer(detector, fused: bool):
    """An image score from the edit map: the mean of its top 1% of pixels (a paste lights up a
    region; a real image should light up none), optionally fused with the image probability."""
    def score(x: torch.Tensor) -> torch.Tensor:
        prob, maps = detector.predict(x)
        flat = maps.flatten(1)
        top = flat.topk(max(1, flat.shape[1] // 100), dim=1).values.mean(1)
        return 1 - (1 - prob) * (1 - top) if fused else top
    return score


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", required=True, help="the runs whose fakes the detector is tested on")
    p.add_argument("--train-runs", nargs="+", help="train on these runs only (default: --runs); the others "
                   "are held-out families")
    p.add_argument("--edits", nargs="*", default=[], metavar="NAME=FILE.npz")
    p.add_argument("--real", default="mnist:train")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--edit-weight", type=float, default=10.0)
    p.add_argument("--minutes", type=float, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: two trials side by side)")
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--perturb", action="store_true", help="also the lowest and mean AUC over the sources "
                   "under each of the benchmark's perturbations")
    p.add_argument("--map-scores", action="store_true", help="also the AUC of two image scores read off the "
                   "edit map: the mean of its top 1%% of pixels, and that fused with the image probability "
                   "(noisy-or)")
    p.add_argument("--by-size", action="store_true", help="also the AUC on all pastes by pixels changed, clean "
                   "and after each perturbation")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other DetectTrainConfig field, e.g. --set fakes_per_source=4000 (repeatable)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    runs = [Path(r) for r in args.runs]
    shape = genforge.load(runs[0]).image_shape
    test = load_dataset(args.real.split(":")[0], "test", image_size=shape[1], channels=shape[0])
    n = args.n_test
    real_test = test.images[:n].float() / 255
    overrides = parse_overrides(args.set)
    config = DetectTrainConfig(**{"minutes": args.minutes, "width": args.width, "edit_weight": args.edit_weight,
                                  **overrides})
    fakes = held_out_fakes(runs, test, n, args.edits, config.edit_truth)
    train_runs = [Path(r) for r in args.train_runs] if args.train_runs else runs
    detector, card = train_detector(load_slice(args.real, shape[1], shape[0]), train_runs, None, config,
                                    progress=False)
    result = {"steps": card["training"]["steps"],
              "auc": {k: round(v["auc"], 4) for k, v in per_source(detector_scorer(detector), real_test, fakes).items()}}
    partial = [i for i, name in enumerate(fakes.names) if (fakes.of(name).masks < 1).any()]
    for i in partial:
        chosen = fakes.source == i
        result[f"pixel_auc {fakes.names[i]}"] = round(
            localisation(detector.predict(fakes.images[chosen])[1], fakes.masks[chosen])["pixel_auc"], 4)
    pastes = torch.isin(fakes.source, torch.tensor([i for i in partial if fakes.names[i].endswith(":paste")]))
    maps = detector.predict(fakes.images[pastes])[1]
    for truth in EDIT_TRUTHS:  # the same pastes, judged against either definition of their masks
        masks = (fakes if truth == config.edit_truth else held_out_fakes(runs, test, n, args.edits, truth)).masks
        result[f"pixel_auc all pastes, {truth}"] = round(localisation(maps, masks[pastes])["pixel_auc"], 4)
    if args.map_scores:
        for kind in ("map top 1%", "noisy-or"):
            aucs = per_source(map_scorer(detector, fused=kind == "noisy-or"), real_test, fakes)
            result[f"auc {kind}"] = {source: round(m["auc"], 4) for source, m in aucs.items()}
    if args.perturb:
        for name, aucs in under_perturbations(detector_scorer(detector), real_test, fakes).items():
            values = {source: m["auc"] for source, m in aucs.items()}
            worst = min(values, key=values.get)
            result[f"auc {name}"] = {"mean": round(sum(values.values()) / len(values), 4),
                                     "min": round(values[worst], 4), "worst": worst,
                                     "each": {source: round(auc, 4) for source, auc in values.items()}}
    if args.by_size:
        score = detector_scorer(detector)
        for name, perturb in {"none": lambda x: x, **PERTURBATIONS}.items():
            sizes = by_edit_size(lambda x: score(quantise(perturb(x))), real_test, fakes)
            result[f"by size {name}"] = {source: {size: (round(m["auc"], 4), m["n"]) if "auc" in m else m["n"]
                                                  for size, m in bins.items()} for source, bins in sizes.items()}
    print(json.dumps({"trained on": [r.name for r in train_runs], "width": args.width, "edit_weight": args.edit_weight,
                      "minutes": args.minutes, **overrides, **result}, indent=1))


if __name__ == "__main__":
    main()
