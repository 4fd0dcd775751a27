"""`genforge prior RUN_DIR --kind KIND`: fit a latent prior to a trained autoencoder's codes."""

from __future__ import annotations

from .. import api
from ..priors import PRIORS
from ..train import RunDir
from .train import parse_overrides


def add_parser(sub) -> None:
    p = sub.add_parser("prior", help="fit a latent prior to a trained autoencoder", description=(
        "Encode the run's training set and fit a density to the codes (prior.safetensors + prior.json "
        "in RUN_DIR, replacing any earlier prior). `genforge sample` and `genforge eval` then draw z "
        "from it instead of the standard normal, which the codes of a trained VAE do not follow; the run's "
        "report is rewritten with samples from the new prior."))
    p.add_argument("run_dir")
    p.add_argument("--kind", choices=list(PRIORS), default="gmm",
                   help="gmm: a Gaussian mixture (default); flow: a small rectified-flow network")
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="an option of the prior, e.g. --set components=30 --set covariance=diag for a gmm, "
                   "--set train_steps=4000 for a flow (repeatable)")
    p.add_argument("--data-dir", help="look here first for data files")
    p.set_defaults(run=run)


def run(args) -> int:
    model = api.fit_prior(args.run_dir, args.kind, data_dir=args.data_dir, **parse_overrides(args.set))
    run = RunDir(model.run_dir)
    rewritten = f"; rewrote {run.report}" if run.report.exists() else ""
    print(f"fitted a {model.prior_kind} prior to the codes of {model.name}; wrote {run.prior}{rewritten}")
    return 0
