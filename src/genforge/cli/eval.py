"""`genforge eval`: judge a trained model or any set of images, or train a feature network."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import GenforgeError
from .sample import PRIOR_CHOICES

ORDER = ["fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "inception_score", "classifier_score",
         "classes_covered", "class_kl", "conditional_accuracy", "recon_mse", "recon_psnr", "recon_ssim", "nll", "bits_per_dim",
         "decoded_fid", "decoded_precision", "decoded_recall", "decoded_coverage", "nn_ratio", "copies"]


def add_parser(sub) -> None:
    from . import device_name, positive_float, positive_int
    p = sub.add_parser("eval", help="measure a model or a set of images", description=(
        "genforge eval RUN_DIR: sample --n images and report FID, KID, precision/recall, density/coverage, "
        "the classifier score and class coverage against the test split, beside the real-vs-real floor "
        "(and reconstruction and likelihood for autoencoders); the results are stored in RUN_DIR/eval.json "
        "and shown in the run's report. "
        "genforge eval --images PATH --dataset NAME: the same for a PNG folder or an .npz of images. "
        "genforge eval train-features --dataset NAME: train the data set's feature network."))
    p.add_argument("target", nargs="?", help="RUN_DIR, or the word train-features")
    p.add_argument("--images", help="a folder of PNG/JPEG images or an .npz with an array 'images'")
    p.add_argument("--dataset", help="data set to compare with (for --images and train-features)")
    p.add_argument("--n", type=positive_int, default=10_000, help="images to sample (default 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=device_name, default="cpu", help="RUN_DIR: sample on cpu, cuda or cuda:N")
    p.add_argument("--features", choices=("classifier", "inception"), default="classifier",
                   help="feature network: the data set's shipped classifier (default), or the Inception "
                        "network of the FID convention (needs torch-fidelity and its weights)")
    p.add_argument("--prior", choices=PRIOR_CHOICES, default="auto", help="RUN_DIR of an autoencoder: draw z "
                   "from its fitted prior (auto, the default, or gmm/flow by name) or from the standard normal (none)")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="RUN_DIR: spread of z: above 1 "
                   "wider (more varied, less precise images), below 1 narrower (default 1)")
    p.add_argument("--image-size", type=positive_int, help="--images: judge at this size (default: an .npz's own "
                   "size where it is smaller than the data set's and its feature network reads smaller images, as "
                   "emoji's does at 32; else the data set's); real images are resized to it as training resizes them")
    p.add_argument("--json", help="also write the results as JSON to this file")
    p.add_argument("--data-dir", help="look here first for data files")
    p.add_argument("--nll-images", type=int, default=1000, help="test images for the likelihood estimate (0: skip)")
    p.add_argument("--nll-k", type=positive_int, default=100, help="importance samples per image")
    p.add_argument("--epochs", type=positive_float, default=8, help="train-features: epochs")
    p.add_argument("--out", help="train-features: directory for the weights (default: the package's)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..output_paths import FOLDER, check_output
    if args.json:  # before any work: a path it cannot write is one line
        check_output(args.json, (".json",), "--json")
    if args.out:
        check_output(args.out, (FOLDER,), "--out")
    if args.target == "train-features":
        return train_features(args)
    from ..metrics.evaluate import evaluate_images, evaluate_model
    if args.images:
        if args.target or not args.dataset:
            raise GenforgeError("--images takes --dataset NAME and no RUN_DIR")
        from ..data.registry import get_spec
        from ..imageio import load_images
        channels, native, _ = get_spec(args.dataset).shape
        size = args.image_size or _npz_size(args.images, args.dataset, native)
        if size > native:
            raise GenforgeError(f"--image-size {size} is larger than {args.dataset}'s {native}x{native} images")
        images = load_images(args.images, size, channels)
        result = evaluate_images(images, args.dataset, data_dir=args.data_dir, features=args.features)
    elif args.target:
        from .. import api
        model = api.load(args.target, args.device)
        result = evaluate_model(model, n=args.n, seed=args.seed, data_dir=args.data_dir,
                                nll_images=args.nll_images, nll_k=args.nll_k, features=args.features,
                                prior=args.prior, temperature=args.temperature)
        from ..report.records import record_eval
        stored = record_eval(args.target, result)  # RUN/eval.json, shown in the run's report
    else:
        raise GenforgeError("give a RUN_DIR, --images PATH --dataset NAME, or train-features --dataset NAME")
    print(table(result))
    if args.target:
        print(f"stored in {stored} (the run's report shows it)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _npz_size(path: str, dataset: str, native: int) -> int:
    """The side of the square images in an .npz where it is smaller than the data set's and the data
    set's feature network reads smaller images (emoji's); else `native`, to which they are resized."""
    import numpy as np

    from ..metrics.feature_net import reads_smaller_images
    if Path(path).suffix.lower() != ".npz" or not Path(path).is_file() or not reads_smaller_images(dataset):
        return native
    try:
        with np.load(path, allow_pickle=False) as z:
            shape = z["images"].shape
    except (OSError, ValueError, KeyError):
        return native  # load_images says what is wrong with the file
    return int(shape[1]) if len(shape) >= 3 and shape[1] == shape[2] and 8 <= shape[1] < native else native


def table(result: dict) -> str:
    floor = result.get("floor", {})
    net = result["feature_net"]
    about = (f"{net['dataset']} classifier, test accuracy {net['test_accuracy']:.2%}"
             if net["network"] == "classifier" else net["weights"])
    sampled = f" (z from the {result['prior']} prior)" if result.get("prior", "none") != "none" else ""
    if result.get("temperature", 1.0) != 1.0:
        sampled += f" (temperature {result['temperature']:g})"
    if net.get("test_style_accuracy") is not None:
        about += f", style {net['test_style_accuracy']:.2%}"
    at = f" at {result['image_size']}x{result['image_size']}" if "image_size" in result else ""
    lines = [f"{result.get('n_fake')} images{sampled} against {result.get('n_real')} real test images{at} "
             f"(features: {about})", f"{'metric':20s} {'value':>10s} {'real floor':>11s}"]
    for key in ORDER:
        if key in result:
            lines.append(f"{key:20s} {_fmt(result[key]):>10s} {_fmt(floor[key]) if key in floor else '':>11s}")
    if "n_train" in floor:
        lines.append(f"(real floor: {floor['n_train']} train images against the {result.get('n_real')} test images; "
                     f"FID at so few images is biased upward)" if result.get("n_real", 10_000) < 5000 else
                     f"(real floor: {floor['n_train']} train images against the test split)")
    if "nll" in result:
        lines.append(f"(nll: nats, k={result['nll_k']} on {result['nll_images']} test images, "
                     f"binarised by {result['nll_binarisation']}"
                     + (f"; {result['bits_per_dim']:.3f} bits per dimension)" if "bits_per_dim" in result else ")"))
    if "decoded_fid" in result:
        lines.append("(decoded_*: training images encoded and decoded, the samples a perfect latent prior would "
                     "give; below the sampled values: the prior's share, above the floor: the decoder's)")
    if "nn_ratio" in result:
        lines.append("(nn_ratio: median distance of a sample to its nearest training image over that of a test "
                     "image, about 1 unless samples copy training images; copies: the share of samples nearer a "
                     "training image than 99% of test images, about 0.01)")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def train_features(args) -> int:
    if not args.dataset:
        raise GenforgeError("train-features needs --dataset NAME")
    from ..metrics.feature_net import WEIGHTS_DIR, save_feature_net
    from ..metrics.train_features import train_feature_net
    net, card = train_feature_net(args.dataset, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir)
    path = save_feature_net(net, Path(args.out) if args.out else WEIGHTS_DIR, args.dataset, card)
    print(f"test accuracy {card['test_accuracy']:.2%}; wrote {path} and its card")
    return 0
