"""How well each edit works on a trained model: class change, inversion, inpainting, time.

    python bench/edit_bench.py RUN_DIR [--n 1000] [--hybrid] [--samples 4] [--neighbours 8]
        [--write-md BENCHMARKS.md] [--block NAME]

On n test images of the run's data set, judged by the data set's shipped classifier:
- class change (attribute vector; class swap for a conditional model): each image is sent to a
  random other class; the rate at which the classifier reads that class, the FID of the
  edited set against real test images of the same target classes, and the style kept: how
  often an edit is nearer (in classifier features) its source than a random real image of
  its target class;
- inversion: PSNR, SSIM and classifier agreement of the reconstructions (for a GAN with
  --hybrid, latent search started from the learned inversion encoder, beside plain search;
  the encoder's training time is reported apart, as it is paid once per run);
- inpainting with a centre 14x14 box and a random half-image mask: MSE inside the mask and
  the classifier's accuracy on the completed images, for one completion and for the mean of
  --samples completions (a conditional model given the true label, and again left to find
  it), beside mean-image and nearest-neighbour fill; with --neighbours K, again with the codes
  of the K training images nearest on the known pixels among the search's starts;
- seconds per image of each edit on this machine (latent search included).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

import genforge
from genforge.edit import (Editor, FitConfig, as_float, centre_mask, random_half_masks, read_images,
                           reconstruction_quality)
from genforge.edit.classify import class_reads, features
from genforge.edit.encoder import FILE as ENCODER_FILE
from genforge.metrics.fid import feature_stats, frechet_distance

from common import command, machine, model_label, write_block  # noqa: E402

MD_START, MD_END = "<!-- edit:{}:start -->", "<!-- edit:{}:end -->"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def progress(stage: str, seconds: float) -> None:
    """One line per finished stage on stderr: a slow model's run shows where its time goes."""
    print(f"  {stage}: {seconds:.1f} s", file=sys.stderr, flush=True)


def class_change(editor: Editor, x: torch.Tensor, labels: torch.Tensor, test, swap: bool,
                 generator: torch.Generator, move_code: bool = True, method: str = "auto",
                 strength: float | None = None) -> dict:
    """Each image to a random other class, by the attribute edit (`method`, `strength`) or
    (swap) by class swap (`move_code`: a conditional autoencoder's code moves with
    the label, `strength` times the transport map's move, as `genforge edit` does);
    `strength` None: the edit's default."""
    chosen = {} if strength is None else {"strength": strength}
    net = editor.classifier()
    num_classes = net.config.num_classes
    targets = (labels + torch.randint(1, num_classes, labels.shape, generator=generator)) % num_classes
    edited = torch.empty_like(x)
    start = time.perf_counter()
    for k in range(num_classes):
        idx = (targets == k).nonzero().flatten()
        if len(idx):
            edited[idx] = (editor.swap_class(x[idx], labels[idx], k, move_code, **chosen) if swap
                           else editor.attribute(x[idx], k, labels[idx], method=method, **chosen))
    seconds = time.perf_counter() - start
    # a random real test image of each target class: the reference for FID and style
    pools = [(test.labels == k).nonzero().flatten() for k in range(num_classes)]
    picks = torch.stack([pools[k][torch.randint(len(pools[k]), (1,), generator=generator)][0] for k in targets])
    real = as_float(test.images[picks])
    f_edit, f_source, f_real = features(net, edited), features(net, x), features(net, real)
    kept = ((f_edit - f_source).norm(dim=1) < (f_edit - f_real).norm(dim=1)).float().mean()
    return {"target_rate": float((class_reads(net, edited) == targets).float().mean()),
            "fid_vs_target_class": frechet_distance(*feature_stats(f_edit), *feature_stats(f_real)),
            "style_kept": float(kept), "seconds_per_image": seconds / len(x)}


def inpainting(editor: Editor, x: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, samples: int,
               with_neighbours: Editor | None = None) -> dict:
    cond = labels if editor.model.is_conditional else None
    filled, seconds = timed(editor.inpaint, x, mask, cond)
    progress("inpainting", seconds)
    fills, out = {"model": filled}, {"seconds_per_image": seconds / len(x)}
    if samples > 1:
        fills[f"model, mean of {samples}"], seconds = timed(editor.inpaint, x, mask, cond, samples=samples)
        progress(f"inpainting, mean of {samples}", seconds)
        out["mean_seconds_per_image"] = seconds / len(x)
    if cond is not None:  # the fair match for the baselines, which see no label: the search finds it
        fills["model, label found"], seconds = timed(editor.inpaint, x, mask)
        progress("inpainting, label found", seconds)
        if samples > 1:
            fills[f"model, label found, mean of {samples}"], seconds = timed(editor.inpaint, x, mask, samples=samples)
            progress(f"inpainting, label found, mean of {samples}", seconds)
    if with_neighbours is not None:  # the same searches, started also from training neighbours' codes
        k = with_neighbours.neighbours
        for found, given in [("", cond)] + ([(", label found", None)] if cond is not None else []):
            for average in sorted({1, samples}):
                name = f"model{found}, {k} neighbours" + (f", mean of {average}" if average > 1 else "")
                fills[name], seconds = timed(with_neighbours.inpaint, x, mask, given, samples=average)
                progress(f"inpainting{found}, {k} neighbours, mean of {average}", seconds)
    for name, fill in {**fills, **editor.baselines(x, mask)}.items():
        out[name] = fill_scores(editor, x, labels, mask, fill)
    return out


def fill_scores(editor: Editor, x: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor) -> dict:
    """Masked MSE over all the images' missing pixels, and how often the classifier reads the true label."""
    mask = mask.expand(len(x), *mask.shape[1:]).expand_as(x)
    return {"masked_mse": float(((fill - x).pow(2) * mask).sum() / mask.sum()),
            "accuracy": float((editor.reads(fill) == labels).float().mean())}


def bench(run_dir: Path, n: int, seed: int, steps: int, restarts: int, hybrid: bool = False, samples: int = 4,
          neighbours: int = 0) -> dict:
    model = genforge.load(run_dir)
    fit = FitConfig(steps=steps, restarts=restarts, seed=seed)
    editor = Editor(model, fit, seed=seed, hybrid=hybrid)
    hybrid = editor.hybrid  # an autoencoder has its own encoder
    trained_before = (run_dir / ENCODER_FILE).exists()  # then it is loaded, and its training time is unknown here
    encoder_seconds = timed(lambda: editor.encoder)[1] if hybrid else None
    dataset = model.run_config["data"]["dataset"]
    test = read_images(f"{dataset}:test", editor.image_shape)
    generator = torch.Generator().manual_seed(seed)
    chosen = test.subset(torch.randperm(len(test), generator=generator)[:n])
    x, labels = as_float(chosen), chosen.labels
    conditional = editor.model.is_conditional
    cond_labels = labels if conditional else None

    recon, seconds = timed(editor.reconstruct, x, cond_labels)
    progress("inversion", seconds)
    result = {"model": model.name, "label": model_label(model), "dataset": dataset, "n": n, "hybrid": hybrid,
              "attribute_method": editor.default_attribute_method,
              "search_prior": editor.search_prior.kind if editor.search_prior is not None else None,
              "inversion": {**reconstruction_quality(x, recon, editor.feature_net), "seconds_per_image": seconds / n}}
    if hybrid:
        result["inversion"]["encoder_training_seconds"] = None if trained_before else encoder_seconds
        plain, seconds = timed(Editor(model, fit, seed=seed).reconstruct, x, cond_labels)
        result["inversion_plain"] = {**reconstruction_quality(x, plain, editor.feature_net),
                                     "seconds_per_image": seconds / n}
    result["swap_class" if conditional else "attribute"] = class_change(editor, x, labels, test, conditional,
                                                                         generator)
    progress("class change", result["swap_class" if conditional else "attribute"]["seconds_per_image"] * n)
    size = editor.image_shape[1]
    with_neighbours = Editor(model, fit, seed=seed, hybrid=hybrid, neighbours=neighbours) if neighbours else None
    result["neighbours"] = neighbours
    result["inpaint_centre"] = inpainting(editor, x, labels, centre_mask(size, size // 2), samples, with_neighbours)
    result["inpaint_half"] = inpainting(editor, x, labels, random_half_masks(n, size, generator), samples,
                                        with_neighbours)
    return result


COND_NOTE = ("- a conditional model inverts and inpaints given each image's true label (the baselines "
             "see no label), and inpaints again with the label left to the search (\"label found\")")


def markdown(r: dict, block: str) -> str:
    inv, change_key = r["inversion"], "swap_class" if "swap_class" in r else "attribute"
    change, edit = r[change_key], change_key.replace("_", " ")
    lines = [MD_START.format(block),
             f"## Edits: {r.get('label', r['model'])} on {r['dataset']} ({r['n']} test images)", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}, cpu",
             f"- command: `{command()}`"]
    if change_key == "swap_class":
        lines.append(COND_NOTE)
    else:
        lines.append(f"- attribute edit by `--method {r['attribute_method']}`, the default for this model")
    if r.get("search_prior"):
        lines.append(f"- inpainting searches under the run's fitted {r['search_prior']} latent prior (`--search-prior "
                     "fitted`, the default): its draws screened for starts, its density the search's prior term")
    if r.get("neighbours"):
        lines.append(f"- \"{r['neighbours']} neighbours\": the search starts also from the codes of the "
                     f"{r['neighbours']} training images nearest on the known pixels (`--neighbours "
                     f"{r['neighbours']}`; the best two guesses, an autoencoder's own among them, take two of the 3 "
                     "starts)")
    lines += ["", "| edit | measure | value |", "|---|---|---:|"]
    inversions = [("inversion (hybrid: encoder + search)", inv), ("inversion (search alone)", r["inversion_plain"])] \
        if r.get("hybrid") else [("inversion", inv)]
    for label, q in inversions:
        lines += [f"| {label} | PSNR / SSIM | {q['psnr']:.2f} dB / {q['ssim']:.3f} |",
                  f"| {label} | classifier agreement | {q['agreement']:.1%} |",
                  f"| {label} | seconds per image | {q['seconds_per_image']:.4f} |"]
    if r.get("hybrid"):
        seconds = inv["encoder_training_seconds"]
        lines.append("| inversion encoder | training seconds (once per run) | "
                     + ("kept from an earlier use, not timed here |" if seconds is None else f"{seconds:.1f} |"))
    lines += [f"| {edit} | classifier reads the target class | {change['target_rate']:.1%} |",
              f"| {edit} | FID vs real target-class images | {change['fid_vs_target_class']:.2f} |",
              f"| {edit} | style kept (nearer source than a target-class image) | {change['style_kept']:.1%} |",
              f"| {edit} | seconds per image | {change['seconds_per_image']:.4f} |", "",
              "| inpainting mask | fill | masked MSE | classifier accuracy |", "|---|---|---:|---:|"]
    for key, label in (("inpaint_centre", "centre 14x14"), ("inpaint_half", "random half")):
        for fill, m in r[key].items():
            if isinstance(m, dict):
                lines.append(f"| {label} | {fill} | {m['masked_mse']:.4f} | {m['accuracy']:.1%} |")
        lines.append(f"| {label} | model: seconds per image | {r[key]['seconds_per_image']:.4f} | |")
        if "mean_seconds_per_image" in r[key]:
            seconds = r[key]["mean_seconds_per_image"]
            lines.append(f"| {label} | mean of completions: seconds per image | {seconds:.4f} | |")
    return "\n".join(lines + [MD_END.format(block)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--n", type=int, default=1000, help="test images (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--search-steps", type=int, default=150, help="latent search: Adam steps")
    p.add_argument("--restarts", type=int, default=3, help="latent search: random starts per image")
    p.add_argument("--hybrid", action="store_true", help="GANs: start latent search from a learned encoder")
    p.add_argument("--samples", type=int, default=4, help="inpainting: also the mean of this many completions "
                   "(1: the single completion alone)")
    p.add_argument("--neighbours", type=int, default=0, help="inpainting: also the searches started from the "
                   "codes of this many training neighbours (genforge edit --neighbours)")
    p.add_argument("--write-md", type=Path, help="write the table into this markdown file")
    p.add_argument("--block", help="name of the Markdown block (default: MODEL-DATASET), for a second run of "
                   "the same model")
    args = p.parse_args()
    result = bench(args.run_dir, args.n, args.seed, args.search_steps, args.restarts, args.hybrid, args.samples,
                   args.neighbours)
    key = args.block or result["model"] + "-" + result["dataset"]
    block = markdown(result, key)
    print(block)
    if args.write_md:
        write_block(args.write_md, block, MD_START.format(key), MD_END.format(key))


if __name__ == "__main__":
    main()
