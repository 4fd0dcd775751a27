"""How well genforge's detector tells real images from generated and edited ones.

    python bench/detect_bench.py --runs RUN_DIR... [--edits NAME=FILE.npz ...] [--real mnist]
                                 [--steps 3000 | --minutes M] [--n-test 1000] [--groups gan:dcgan,sngan/vae:vae]
                                 [--[no-]self-blend] [--out bench/out/detect] [--write-md BENCHMARKS.md]
                                 [--block NAME] [--figure FILE.png]

Colour data work the same way: `--real emoji:train` with runs trained on `--dataset emoji
--image-size 32` (the size and mode come from the runs); emoji's test split holds 738 images,
so --n-test is cut to half of it (the real side and the fakes' originals never overlap).
--figure draws the "all" detector's heatmaps over real test images, the first outside edit
(else the first family's pastes) and the first family's samples.

Every run directory is one family; each gives two fake sources, its samples ("NAME:sample")
and real images with a region pasted from its output ("NAME:paste", with known masks).
Measured on images no detector saw in training (real test-split images; fakes from other
test images and other seeds): AUC / AP per source for the CNN detector trained on all
families, the spectral + logistic-regression baseline and each GAN's own discriminator;
the same under the four perturbations; AUC on pastes by the number of pixels they changed;
pixel AUC / F1 of the edit maps on pastes; the generalisation matrix (a detector per group of
families, tested on every source); and milliseconds per image. --edits adds outside edits (e.g.
`genforge edit` inpaintings) as test-only sources: an .npz with `images` (N, H, W[, C]) uint8
and, for localisation, `masks` (N, H, W) with 1 where the image was changed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch

import genforge
from genforge.data import ImageSet, load_dataset, load_slice, parse_slice
from genforge.detect import DetectTrainConfig, train_detector
from genforge.detect.evaluate import detector_scorer, localisation, per_source, separation, under_perturbations
from genforge.detect.fakes import FakeSet, concat, make_fakes, model_fakes
from genforge.detect.spectral import SpectralBaseline, discriminator_score
from genforge.imageio import load_images

from common import command, machine, write_block

MD_START, MD_END = "<!-- detect:start -->", "<!-- detect:end -->"


def outside_edits(specs: list[str], shape: tuple[int, int, int]) -> list[FakeSet]:
    """NAME=FILE.npz -> a FakeSet "NAME" with the file's masks (all ones where it has none)."""
    sets = []
    for spec in specs:
        name, _, path = spec.partition("=")
        channels, size, _ = shape
        images = load_images(path, size, channels).float() / 255
        with np.load(path, allow_pickle=False) as z:
            masks = torch.from_numpy(z["masks"]).float().unsqueeze(1) if "masks" in z else torch.ones(
                len(images), 1, size, size)
        sets.append(FakeSet(images, (masks > 0.5).float(), torch.zeros(len(images), dtype=torch.long), [name]))
    return sets


def held_out_fakes(runs: list[Path], test: ImageSet, n: int, edits: list[str], truth: str = "changed") -> FakeSet:
    """n samples and n pastes of each run, made from test images n..2n-1 (the real side uses 0..n-1)
    with seeds no training used, and the outside edits; pastes masked as `truth` defines."""
    return concat([model_fakes(r, test.subset(torch.arange(n, 2 * n)), n, seed=10_000 + i, truth=truth)
                   for i, r in enumerate(runs)] + outside_edits(edits, test.shape))


EDIT_SIZES = ((1, 20), (20, 60), (60, None))  # pixels a paste changed


def by_edit_size(score, real: torch.Tensor, fakes: FakeSet) -> dict[str, dict[str, dict]]:
    """{paste source or "all pastes": {size bin: {n, auc, ap}}}: how detection depends on how many pixels
    an edit changed (the masks must mark the changed pixels)."""
    real_scores, fake_scores = score(real), score(fakes.images)
    changed = fakes.masks.sum(dim=(1, 2, 3))
    pastes = [i for i, name in enumerate(fakes.names) if name.endswith(":paste")]
    groups = {fakes.names[i]: fakes.source == i for i in pastes}
    groups["all pastes"] = torch.isin(fakes.source, torch.tensor(pastes))
    result = {}
    for name, members in groups.items():
        result[name] = {}
        for low, high in EDIT_SIZES:
            chosen = members & (changed >= low) & (changed < (high or changed.max() + 1))
            label = f"{low}-{high - 1} px" if high else f"{low}+ px"
            result[name][label] = ({"n": int(chosen.sum()), **separation(real_scores, fake_scores[chosen])}
                                   if chosen.sum() >= 10 else {"n": int(chosen.sum())})
    return result


def groups_of(runs: list[Path], spec: str | None) -> dict[str, list[Path]]:
    """Families trained on together: given as "gan:dcgan,sngan/vae:vae,cvae", else GANs and autoencoders."""
    by_name = {r.name: r for r in runs}
    if spec:
        return {g: [by_name[n] for n in names.split(",")]
                for g, names in (part.split(":") for part in spec.split("/"))}
    gans = [r for r in runs if genforge.load(r).module.has_discriminator]
    groups = {"GANs": gans, "autoencoders": [r for r in runs if r not in gans]}
    return {g: rs for g, rs in groups.items() if rs}


def timing(detector, images: torch.Tensor) -> dict[str, float]:
    one = images[:1]
    detector.predict(one)
    times = []
    for _ in range(50):
        t = time.perf_counter()
        detector.predict(one)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    detector.predict(images[:1000], batch_size=256)
    batched = (time.perf_counter() - t) / len(images[:1000])
    return {"single_ms": 1000 * float(np.median(times)), "batched_ms": 1000 * batched}


def run_bench(args) -> dict:
    runs = [Path(r) for r in args.runs]
    channels, size, _ = genforge.load(runs[0]).image_shape
    name = parse_slice(args.real)[0]
    real_train = load_slice(args.real, size, channels)
    test = load_dataset(name, "test", image_size=size, channels=channels)
    n = min(args.n_test, len(test) // 2)
    if n < args.n_test:
        print(f"the test split of {name} holds {len(test)} images: testing on {n} real images and {n} fakes "
              "per source", flush=True)
    args.n_test = n
    real_test = test.images[:n].float() / 255
    config = DetectTrainConfig(steps=args.steps, minutes=args.minutes, fakes_per_source=args.fakes_per_source,
                               seed=args.seed, precision=args.precision, self_blend=args.self_blend)
    test_fakes = held_out_fakes(runs, test, n, args.edits, config.edit_truth)

    steps, precision = {}, {}

    def train(group: list[Path], tag: str):
        t = time.time()
        detector, card = train_detector(real_train, group, args.out / tag, config, real_spec=args.real,
                                        progress=False)
        steps[tag] = card["training"]["steps"]
        precision[tag] = card["training"]["precision_used"]
        print(f"trained detector '{tag}' in {time.time() - t:.0f} s ({steps[tag]} steps)", flush=True)
        return detector

    detector = train(runs, "all")
    result = {"edit_truth": config.edit_truth, "self_blend": config.self_blend, "precision": precision["all"],
              "steps": steps,
              "detection": under_perturbations(detector_scorer(detector), real_test, test_fakes)}
    pasted = [i for i, s in enumerate(test_fakes.names) if s.endswith(":paste") or (test_fakes.of(s).masks < 1).any()]
    chosen = torch.isin(test_fakes.source, torch.tensor(pasted))
    result["localisation"] = {
        test_fakes.names[i]: localisation(detector.predict(test_fakes.images[test_fakes.source == i])[1],
                                          test_fakes.masks[test_fakes.source == i]) for i in pasted}
    result["localisation"]["all pastes"] = localisation(detector.predict(test_fakes.images[chosen])[1],
                                                        test_fakes.masks[chosen])
    if config.edit_truth == "changed":
        result["by_edit_size"] = by_edit_size(detector_scorer(detector), real_test, test_fakes)
    train_fakes = make_fakes(runs, real_train, min(args.fakes_per_source, 1000), args.seed)
    spectral = SpectralBaseline().fit(real_train.images[:len(train_fakes)].float() / 255, train_fakes.images)
    result["spectral"] = per_source(spectral.score, real_test, test_fakes)
    result["discriminator"] = {}
    for run in runs:
        model = genforge.load(run)
        if model.module.has_discriminator:
            own = test_fakes.subset(torch.isin(test_fakes.source, torch.tensor(
                [i for i, s in enumerate(test_fakes.names) if s.startswith(f"{run.name}:")])))
            result["discriminator"].update(per_source(lambda x, m=model: discriminator_score(m, x), real_test, own))
    result["generalisation"] = {"all": result["detection"]["none"]}
    for group, members in groups_of(runs, args.groups).items():
        result["generalisation"][group] = {
            "families": [r.name for r in members],
            **per_source(detector_scorer(train(members, group)), real_test, test_fakes)}
    result["timing"] = timing(detector, real_test)
    result["families"] = {run.name: budget_of(run) for run in runs}
    if args.figure:
        heatmap_figure(detector, real_test, test_fakes, runs[0].name, args.figure)
    return result


def budget_of(run: Path) -> str:
    """How long a run trained, as its config and log say: "resgan-cond, 15 min budget, 510 steps"."""
    model = genforge.load(run)
    train = model.run_config.get("train", {})
    asked = ", ".join(f"{train[k]:g} {unit}" for k, unit in (("minutes", "min"), ("steps", "steps"), ("epochs", "epochs"))
                      if train.get(k))
    steps = None
    log = run / "metrics.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                steps = json.loads(line).get("step", steps)
            except ValueError:
                continue
    width = {k: v for k, v in vars(model.module.config).items() if "width" in k}
    return (f"{model.name} ({', '.join(f'{k}={v}' for k, v in width.items())}), budget {asked or '?'}"
            + (f", {steps} steps logged" if steps is not None else ""))


def heatmap_figure(detector, real: torch.Tensor, fakes: FakeSet, family: str, path: Path, n: int = 6) -> None:
    """Rows of n tiles: real test images, edited ones (the first outside edit, else `family`'s pastes)
    as they are and again with the true edit outlined in green, and `family`'s samples; each but the
    plain edited row with the detector's edit map over it and its probability of being generated or
    edited."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genforge.detect.heatmap import outline, overlay

    outside = [s for s in fakes.names if ":" not in s]
    edit_source = outside[0] if outside else f"{family}:paste"
    edited = fakes.of(edit_source)
    # n edits that changed a region (not the whole image), and n real images, spread over the test split
    # (it is in emoji order: neighbours are often one emoji in several skin tones)
    partial = [i for i in range(len(edited)) if 0 < edited.masks[i].mean() < 0.6]
    partial = [partial[k * len(partial) // n] for k in range(min(n, len(partial)))]
    spread = torch.arange(n) * (len(real) // n)
    rows = [("real test images", real[spread], None), (f"edited ({edit_source})", edited.images[partial], "plain"),
            ("its edit map", edited.images[partial], edited.masks[partial]),
            (f"{family} samples", fakes.of(f"{family}:sample").images[:n], None)]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.5 * n, 1.75 * len(rows)), squeeze=False)
    for r, (label, images, masks) in enumerate(rows):
        probs, maps = detector.predict(images)
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c >= len(images):
                continue
            picture = (images[c].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            if isinstance(masks, str):  # the edited picture as it is, without the map
                ax.imshow(picture, interpolation="nearest")
                continue
            shown = overlay(picture, maps[c])
            if masks is not None:  # the truth, outlined in green
                scale = shown.shape[0] // picture.shape[0]
                truth = np.repeat(np.repeat(masks[c, 0].numpy() > 0.5, scale, 0), scale, 1)
                shown[outline(truth)] = (0, 200, 0)
            ax.imshow(shown, interpolation="nearest")
            ax.set_title(f"{float(probs[c]):.2f}", fontsize=8, color="tab:red" if probs[c] >= 0.5 else "black")
        axes[r][0].text(-0.1, 0.5, label, transform=axes[r][0].transAxes, rotation=90, va="center", ha="right",
                        fontsize=8)
    fig.suptitle("P(generated or edited) above each; red tint and blue outline: the edit map; "
                 "green outline: the true edit", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", flush=True)


def markdown(result: dict, args) -> str:
    det, sources = result["detection"], list(result["detection"]["none"])
    perturbations = [p for p in det if p != "none"]
    budget = f"{args.steps} steps" if args.steps else f"{args.minutes:g} minutes"
    start, end = markers(args.block)
    title = "## Detection: real against generated and edited images" + (f" ({args.block})" if args.block else "")
    lines = [start, title, "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}, cpu",
             f"- command: `{command()}`",
             f"- each detector trains for {budget} on {args.real} against {args.fakes_per_source} samples and "
             f"{args.fakes_per_source} pastes per family"
             + (f", and {args.fakes_per_source} self-blended real images (a region pasted from a restyled copy of "
                "the image itself; not a test source)" if result.get("self_blend") else "")
             + f" ({result['precision']} precision; steps: "
             + ", ".join(f"{tag} {n}" for tag, n in result["steps"].items())
             + f"); tested on {args.n_test} real test images and {args.n_test} unseen fakes per source",
             "- the families (their own training budgets): " + "; ".join(
                 f"{name}: {budget}" for name, budget in result.get("families", {}).items()),
             *(f"- {note}" for note in args.note),
             "- a paste's edit mask (trained on and scored against) marks "
             + {"region": "the region pasted", "changed": "the pixels the paste changed by more than one grey "
                "level (as for the inpaintings)"}[result["edit_truth"]], "",
             "### AUC / AP per source (detector trained on all families) and the baselines", "",
             "| source | detector AUC | detector AP | spectral + LR AUC | GAN discriminator AUC | "
             + " | ".join(f"{p} AUC" for p in perturbations) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(perturbations)]
    for s in sources:
        disc = result["discriminator"].get(s)
        cells = [det["none"][s]["auc"], det["none"][s]["ap"], result["spectral"][s]["auc"]]
        disc_cell = f"{disc['auc']:.4f}" if disc else "-"
        lines.append(f"| {s} | " + " | ".join(f"{v:.4f}" for v in cells) + f" | {disc_cell} |"
                     + "".join(f" {det[p][s]['auc']:.4f} |" for p in perturbations))
    gen = result["generalisation"]
    lines += ["", "### Generalisation: AUC of a detector trained on some families (rows) on every source", "",
              "| trained on | " + " | ".join(sources) + " |", "|---|" + "---:|" * len(sources)]
    for group, row in gen.items():
        label = group if group == "all" else f"{group} ({', '.join(row['families'])})"
        lines.append(f"| {label} | " + " | ".join(f"{row[s]['auc']:.4f}" for s in sources) + " |")
    if result.get("by_edit_size"):
        bins = list(next(iter(result["by_edit_size"].values())))
        lines += ["", "### Pastes by edit size: AUC (number of test pastes) by pixels changed", "",
                  "| source | " + " | ".join(bins) + " |", "|---|" + "---:|" * len(bins)]
        for s, row in result["by_edit_size"].items():
            lines.append(f"| {s} | " + " | ".join(f"{row[b]['auc']:.4f} ({row[b]['n']})" if "auc" in row[b]
                                                  else f"- ({row[b]['n']})" for b in bins) + " |")
    lines += ["", "### Localisation (edit maps on pasted regions)", "", "| source | pixel AUC | pixel F1 |",
              "|---|---:|---:|"]
    lines += [f"| {s} | {m['pixel_auc']:.4f} | {m['pixel_f1']:.4f} |" for s, m in result["localisation"].items()]
    t = result["timing"]
    lines += ["", f"Speed: {t['single_ms']:.2f} ms for one image, {t['batched_ms']:.3f} ms per image in batches "
              f"of 256 ({machine()})."]
    return "\n".join(lines + [end])


def markers(block: str | None) -> tuple[str, str]:
    """The Markdown block's markers: the main detection block's, or a second one named `block`."""
    return (MD_START, MD_END) if block is None else (f"<!-- detect:{block}:start -->", f"<!-- detect:{block}:end -->")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", required=True, help="run directories, one per family")
    p.add_argument("--edits", nargs="*", default=[], metavar="NAME=FILE.npz", help="outside edits, test only")
    p.add_argument("--real", default="mnist:train", help="real training images (data set or slice)")
    p.add_argument("--steps", type=int)
    p.add_argument("--minutes", type=float)
    p.add_argument("--fakes-per-source", type=int, default=2000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--groups", help='families trained on together, e.g. "gan:dcgan,sngan/vae:vae,cvae"')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default=DetectTrainConfig.precision, help="fp32, bf16 or auto")
    p.add_argument("--self-blend", action=argparse.BooleanOptionalAction, default=DetectTrainConfig.self_blend,
                   help="train on self-blended real images too (genforge.detect.fakes.self_blends)")
    p.add_argument("--out", type=Path, default=Path("bench/out/detect"))
    p.add_argument("--write-md", type=Path)
    p.add_argument("--block", help="name of a second Markdown block (another data set), beside the main one")
    p.add_argument("--note", action="append", default=[], help="a line to add to the block (e.g. what else ran)")
    p.add_argument("--figure", type=Path, help="also draw the detector's heatmaps on test images into this PNG")
    args = p.parse_args()
    if (args.steps is None) == (args.minutes is None):
        p.error("give one budget per detector: --steps or --minutes")
    result = run_bench(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detect.json").write_text(json.dumps(result, indent=1))
    block = markdown(result, args)
    print(block)
    if args.write_md:
        write_block(args.write_md, block, *markers(args.block))


if __name__ == "__main__":
    main()
