"""`genforge train`: train a model on a data set into a run directory."""

from __future__ import annotations

import json

from .. import api
from ..errors import GenforgeError
from ..models import MODELS
from ..priors import PRIORS
from ..train.distributed import DEFAULT_TIMEOUT_S, is_main_process
from ..train.precision import DEFAULT_PRECISION, PRECISIONS


def add_parser(sub) -> None:
    from . import device_name, positive_float, positive_int
    p = sub.add_parser("train", help="train a model", description=(
        "Train a model, writing config.json, weights (safetensors), metrics.jsonl, sample grids and "
        "report.md into --out. Budgets are totals for the run; the first one reached ends training "
        "(default: 5 epochs). Ctrl-C saves a checkpoint; --resume continues from it."))
    p.add_argument("--model", choices=list(MODELS), help="model family (required unless --resume)")
    p.add_argument("--dataset", default="fashion-mnist",
                   help="a named data set (genforge data list: mnist, fashion-mnist, cifar10, cifar100, emoji, celeba64, svhn) "
                   "or folder:PATH (default: fashion-mnist)")
    p.add_argument("--out", required=True, help="run directory to write")
    budget = p.add_argument_group("budget")
    budget.add_argument("--minutes", type=positive_float, help="wall-clock minutes of training")
    budget.add_argument("--epochs", type=positive_float, help="passes over the training set")
    budget.add_argument("--steps", type=positive_int, help="optimisation steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, help="default: the model's own")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--data-dir", help="look here first for data files")
    p.add_argument("--image-size", type=positive_int, help="resize images (default: the data's own; 32 for folders)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="1 (grayscale) or 3 (RGB)")
    from .data import BACKGROUND_HELP, background_colour
    p.add_argument("--background", type=background_colour, help=BACKGROUND_HELP + "; kept in the run's config.json")
    p.add_argument("--labels", choices=("class", "style", "class+style"), help="what a conditional model is "
                   "conditioned on: class (default), style (emoji's vendor: google, twitter) or class+style "
                   "(one label per category/vendor pair); num_classes follows unless --set")
    p.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=PRECISIONS, help="fp32, bf16, or auto: bf16 where the hardware runs "
                   f"it fast (CPUs with AMX); default {DEFAULT_PRECISION}, or the run's own on --resume")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a model config field, e.g. --set latent_dim=32 (repeatable)")
    p.add_argument("--sample-every", type=positive_int, default=500, help="steps between sample grids")
    p.add_argument("--eval-every", type=positive_int, help="steps between evaluations of samples "
                   "(FID etc. against the test split; needs the data set's feature network)")
    p.add_argument("--eval-n", type=positive_int, default=2000, help="samples per evaluation (default 2000)")
    p.add_argument("--max-rollbacks", type=int, default=2, help="on divergence (NaN, exploding loss, a "
                   "discriminator that wins completely) go back to the last checkpoint with halved learning "
                   "rates at most this many times, then stop (default 2; 0 stops at once)")
    p.add_argument("--log-every", type=positive_int, default=25, help="steps between log lines and NaN checks")
    p.add_argument("--checkpoint-minutes", type=positive_float, default=1.0, help="minutes between checkpoints")
    p.add_argument("--prior", choices=["none", *PRIORS], help="latent prior to fit to an autoencoder's codes "
                   "after training: gmm (default for autoencoders), flow or none")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    dist = p.add_argument_group("distributed (under torchrun: torchrun --nproc_per_node N -m genforge train ...)")
    dist.add_argument("--sync-bn", action="store_true", help="BatchNorm statistics over the global batch "
                      "rather than each rank's (torch's SyncBatchNorm; needs --device cuda)")
    dist.add_argument("--dist-timeout", type=positive_float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                      help=f"a rank that died or stopped answering ends the job within this (default {DEFAULT_TIMEOUT_S:g})")
    p.set_defaults(run=run)


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise GenforgeError(f"--set takes FIELD=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            try:
                out[key] = float(value)  # nan, inf: JSON spells them otherwise; the config check refuses them
            except ValueError:
                out[key] = value  # a bare string such as likelihood=gaussian; the config check reads the rest
    return out


def model_overrides(args) -> dict:
    """The --set fields for the model's config. Two of its fields are given otherwise: batch_size
    (the model's default for --batch-size, which `--set batch_size=N` sets here) and image_shape
    (the data's, with --image-size and --channels)."""
    overrides = parse_overrides(args.set)
    if "image_shape" in overrides:
        raise GenforgeError("image_shape comes from the data: set it with --image-size and --channels")
    if "batch_size" in overrides:
        if args.batch_size is not None:
            raise GenforgeError("give --batch-size or --set batch_size, not both")
        args.batch_size = overrides.pop("batch_size")  # checked with the training config
    return overrides


def run(args) -> int:
    if not args.resume and not args.model:
        raise GenforgeError("--model is required for a new run (or pass --resume)")
    from ..output_paths import FOLDER, check_output
    check_output(args.out, (FOLDER,), "--out")  # the run directory
    overrides = model_overrides(args)  # first: it may set args.batch_size
    model = api.train(args.model or "", args.dataset, args.out, steps=args.steps, epochs=args.epochs,
                      minutes=args.minutes, seed=args.seed, batch_size=args.batch_size,
                      data_dir=args.data_dir, image_size=args.image_size, channels=args.channels,
                      device=args.device, resume=args.resume, progress=not args.no_progress,
                      sample_every=args.sample_every, log_every=args.log_every,
                      checkpoint_minutes=args.checkpoint_minutes, eval_every=args.eval_every,
                      eval_n=args.eval_n, max_rollbacks=args.max_rollbacks, prior=args.prior,
                      background=args.background,
                      precision=args.precision, labels=args.labels,
                      sync_bn=args.sync_bn, dist_timeout=args.dist_timeout,
                      **overrides)
    if is_main_process():  # under torchrun, one line for the job, not one per rank
        print(f"trained {model.name}; report: {model.run_dir / 'report.md'}")
    return 0
