"""`genforge prior RUN_DIR --kind KIND`: fit a latent prior to a trained autoencoder's codes."""

from __future__ import annotations

from .. import api
from ..priors import PRIORS
from ..train import RunDir


def add_parser(sub) -> None:
    p = sub.add_parser("prior", help="fit a latent prior to a trained autoencoder", description=(
        "Encode the run's training set and fit a density to the codes (prior.safetensors + prior.json "
        "in RUN_DIR, replacing any earlier prior). `genforge sample` and `genforge eval` then draw z "
        "from it instead of the standard normal, which the codes of a trained VAE do not follow."))
    p.add_argument("run_dir")
    p.add_argument("--kind", choices=list(PRIORS), default="gmm",
                   help="gmm: a Gaussian mixture (default); flow: a small rectified-flow network")
    p.add_argument("--data-dir", help="look here first for data files")
    p.set_defaults(run=run)


def run(args) -> int:
    model = api.fit_prior(args.run_dir, args.kind, data_dir=args.data_dir)
    print(f"fitted a {model.prior_kind} prior to the codes of {model.name}; wrote {RunDir(model.run_dir).prior}")
    return 0
