"""Time of a latent-prior mixture fit: genforge's batched EM (`priors/em.py`) against
scikit-learn's `GaussianMixture` on the same codes, from the same k-means start.

    python bench/mixture_fit.py RUN_DIR [--fits full:120 diag:120 full:30] [--write-md BENCHMARKS.md]

The codes are the posterior means of the run's training set (what `genforge train` fits its
prior to). For each fit: seconds, EM iterations and the mean log-likelihood of the codes under
the fitted mixture, for both implementations; the same iterations and likelihood say the two
fits are the same fit.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import solve_triangular
from sklearn.mixture import GaussianMixture

import genforge
from genforge.api import training_codes, training_set
from genforge.priors.em import fit_mixture

from common import block_header, model_label, write_block

MD_START, MD_END = "<!-- mixture-fit:start -->", "<!-- mixture-fit:end -->"


def log_likelihood(codes: np.ndarray, weights, means, covariances, covariance: str) -> float:
    """Mean log-likelihood of the codes under a mixture, scored by scikit-learn for both fits."""
    gmm = GaussianMixture(len(weights), covariance_type=covariance)
    gmm.weights_, gmm.means_ = weights, means
    if covariance == "full":  # scikit-learn scores with the Cholesky factors of the precisions
        gmm.precisions_cholesky_ = np.stack([solve_triangular(np.linalg.cholesky(c), np.eye(len(c)), lower=True).T
                                             for c in covariances])
    else:
        gmm.precisions_cholesky_ = 1 / np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
    return float(gmm.score(codes))


def run(codes: torch.Tensor, covariance: str, components: int) -> dict:
    x = codes.double().numpy()
    started = time.perf_counter()
    ours = fit_mixture(codes, components, covariance, seed=0)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fit stopped at max_iter warns; the iterations say so
        theirs = GaussianMixture(components, covariance_type=covariance, random_state=0).fit(x)
    theirs_s = time.perf_counter() - started
    full = theirs.covariances_ if covariance == "full" else np.apply_along_axis(np.diag, -1, theirs.covariances_)
    row = {"fit": f"{covariance}:{components}", "ours_s": ours_s, "ours_iter": ours.iterations,
           "ours_ll": log_likelihood(x, ours.weights.numpy(), ours.means.numpy(), ours.covariances.numpy(), covariance),
           "sklearn_s": theirs_s, "sklearn_iter": int(theirs.n_iter_),
           "sklearn_ll": log_likelihood(x, theirs.weights_, theirs.means_, full, covariance)}
    print(row, flush=True)
    return row


def markdown(rows: list[dict], label: str, n: int, dim: int) -> str:
    lines = block_header(MD_START, "Latent-prior mixture fit: genforge's EM against scikit-learn's",
                         f"codes: the {n} posterior means ({dim} dims) of the training set of `{label}`; "
                         "both from scikit-learn's k-means start (seed 0), tolerance 1e-3, float64")
    lines += ["| covariance:components | genforge (s) | iterations | log-likelihood | scikit-learn (s) | iterations "
              "| log-likelihood | speed-up |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['fit']} | {r['ours_s']:.1f} | {r['ours_iter']} | {r['ours_ll']:.5f} | {r['sklearn_s']:.1f} | "
                     f"{r['sklearn_iter']} | {r['sklearn_ll']:.5f} | {r['sklearn_s'] / r['ours_s']:.1f}x |")
    return "\n".join(lines + [MD_END])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--fits", nargs="+", default=["full:120", "diag:120", "full:30"], help="COVARIANCE:COMPONENTS")
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    model = genforge.load(args.run)
    codes, _ = training_codes(model, training_set(model, None))
    rows = [run(codes, spec.split(":")[0], int(spec.split(":")[1])) for spec in args.fits]
    if args.write_md:
        write_block(args.write_md, markdown(rows, model_label(model), *codes.shape), MD_START, MD_END)


if __name__ == "__main__":
    main()
