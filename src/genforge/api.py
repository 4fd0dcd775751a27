"""The public Python face of genforge: `train()` a model, `load()` it, sample from it.

    import genforge
    model = genforge.train("vae", "mnist", "runs/vae", minutes=3)
    images = model.sample(64, seed=0)          # (64, 1, 28, 28) floats in [0, 1]
    images = model.sample(64, prior="none")    # z from N(0, I) instead of the fitted prior
    z = model.encode(images); x = model.decode(z)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from .data import ImageSet, load_dataset
from .data.source import takes_background
from .data.labelling import check_labelling, relabel
from .errors import ConfigError, GenforgeError, RunError
from .models import GenerativeModel, build_model, model_class
from .priors import PRIORS, LatentPrior, card_path, delete_prior, load_prior, save_prior
from .priors import fit_prior as fit_latent_prior
from .train import RunDir, TrainConfig
from .train.distributed import DEFAULT_TIMEOUT_S, SINGLE as SINGLE_PROCESS, Group, main_first
from .train.distributed import start as start_distributed, stop as stop_distributed
from .train.precision import DEFAULT_PRECISION
from .train import train as train_loop


class Model:
    """A trained model ready for use: eval mode, no gradients, seeded sampling, batching."""

    def __init__(self, module: GenerativeModel, run_config: dict, run_dir: Path | None = None,
                 prior: LatentPrior | None = None):
        self.module = module.eval()
        self.run_config = run_config
        self.run_dir = run_dir
        self.prior = prior

    @property
    def name(self) -> str:
        return self.module.name

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.module.config.image_shape)

    @property
    def device(self) -> torch.device:
        return self.module.device

    @property
    def prior_kind(self) -> str:
        """The latent prior `sample` uses by default: the fitted one's kind, or "none" (N(0, I))."""
        return self.prior.kind if self.prior is not None else "none"

    def sample(self, n: int, seed: int | None = 0, labels: torch.Tensor | int | None = None,
               batch_size: int = 1000, prior: str = "auto", temperature: float = 1.0) -> torch.Tensor:
        """n images (N, C, H, W) in [0, 1] on the CPU. The same seed gives the same images,
        whatever the batch size: all latent codes are drawn first, in one call.

        `prior`: "auto" draws z from the run's fitted latent prior when it has one, "none" from
        the standard normal, "gmm" or "flow" from that fitted prior (an error if not fitted).

        `temperature` widens (> 1) or narrows (< 1) the spread of z: N(0, T^2 I), each component
        of a fitted mixture about its mean, or a flow's noise, scaled by T (a flow's modes then
        also change how often they are drawn). Wider codes trade precision for recall
        (BENCHMARKS.md, "Sampling temperature")."""
        z, labels = self.draw(n, seed, labels, prior, temperature)
        return self.generate(z, labels, batch_size)

    def draw(self, n: int, seed: int | None = 0, labels: torch.Tensor | int | None = None,
             prior: str = "auto", temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The latent codes (n, latent_dim) and labels (n,) or None that `sample` with these
        arguments turns into images, on the CPU. Drawing apart from generating lets a server
        gather the codes of several requests (each with its own seed) into one forward pass."""
        if n <= 0:
            raise GenforgeError(f"the number of images must be positive, got {n}")
        if not temperature > 0:
            raise GenforgeError(f"the temperature must be positive, got {temperature}")
        if labels is not None and not self.module.is_conditional:
            raise GenforgeError(f"model {self.name!r} is not conditional; it cannot sample a given label")
        latent_prior = self._latent_prior(prior)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        labels = self._labels(n, labels, generator)
        z = (latent_prior.sample(n, generator, labels, temperature) if latent_prior
             else temperature * self.module.latent(n, generator))
        return z, labels

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1000) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] on the CPU for latent codes (and labels), `batch_size` at a
        time. In eval mode every image depends on its own code alone, so codes gathered from several
        requests give each the images it would get alone."""
        out = []
        with torch.inference_mode():
            for i in range(0, len(z), batch_size):
                lab = labels[i:i + batch_size].to(self.device) if labels is not None else None
                out.append(self.module.generate(z[i:i + batch_size].to(self.device), lab).cpu())
        return torch.cat(out)

    def _latent_prior(self, choice: str) -> LatentPrior | None:
        if choice not in ("auto", "none", *PRIORS):
            raise GenforgeError(f"unknown prior {choice!r}; choose auto, none, {', '.join(PRIORS)}")
        if choice in ("auto", "none"):
            return self.prior if choice == "auto" else None
        if not self.module.is_autoencoder:
            raise GenforgeError(f"model {self.name!r} has no encoder, so no fitted latent prior; "
                                "priors are for autoencoders such as 'vae'")
        if choice != self.prior_kind:
            raise GenforgeError(f"{self.run_dir or 'this model'} has no {choice!r} prior (its prior: "
                                f"{self.prior_kind}); fit one with `genforge prior {self.run_dir} --kind {choice}`")
        return self.prior

    def _labels(self, n: int, labels: torch.Tensor | int | None, generator) -> torch.Tensor | None:
        """The labels to draw, on the CPU: as given, n of one class, or uniform for a conditional model."""
        if isinstance(labels, int):
            if not 0 <= labels < self.module.config.num_classes:
                raise GenforgeError(f"label {labels} does not exist; model {self.name!r} has classes "
                                    f"0-{self.module.config.num_classes - 1}")
            labels = torch.full((n,), labels, dtype=torch.long)
        elif labels is None and self.module.is_conditional:
            labels = self.module.random_labels(n, generator)
        return labels.cpu() if labels is not None else None

    def _autoencoder(self) -> GenerativeModel:
        if not self.module.is_autoencoder:
            raise GenforgeError(f"model {self.name!r} has no encoder; encode/decode need an autoencoder such as 'vae'")
        return self.module

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior means for images (N, C, H, W) in [0, 1] (with their labels, for a conditional model)."""
        with torch.inference_mode():
            mu, _ = self._autoencoder().encode(x.to(self.device), _on(labels, self.device))
        return mu

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] for latent codes (and labels, for a conditional model)."""
        with torch.inference_mode():
            return self._autoencoder().decode(z.to(self.device), _on(labels, self.device))


def _on(labels: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if labels is None else labels.to(device)


def load(run_dir: str | Path, device: str = "cpu") -> Model:
    """Loads the trained model of a run directory."""
    run = RunDir(run_dir)
    module, _ = run.load_model(device)
    prior = load_prior(run.prior) if card_path(run.prior).exists() else None
    return Model(module, run.read_config(), run.path, prior)


def fit_prior(run_dir: str | Path, kind: str = "gmm", data_dir: str | None = None, **options) -> Model:
    """Fits a latent prior of `kind` to the posterior means of a trained autoencoder's training
    set, saves it in the run directory (replacing any earlier one) and returns the model with it.
    `options`: the prior's own, e.g. components=30 for a gmm. The run's report, if it has one,
    is rewritten to show samples from the new prior."""
    from .report.run_report import refresh_report
    from .priors import prior_class
    prior_class(kind).check_options(**options)  # a bad option: one line before any work
    model = load(run_dir)
    _fit_and_save_prior(model, training_set(model, data_dir), kind, **options)
    refresh_report(run_dir)
    return load(run_dir)


def training_set(model: Model, data_dir: str | None = None) -> ImageSet:
    """The training split a run was trained on, as it was read then."""
    d = model.run_config["data"]
    data = load_dataset(d["dataset"], "train", data_dir=data_dir or d.get("data_dir"),
                        image_size=d["image_size"], channels=d["channels"], background=d.get("background"))
    return relabel(data, d.get("labels", "class"))


def training_codes(model: Model, data: ImageSet, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An autoencoder's codes (posterior means, N x latent_dim) of `data`, and the labels a
    conditional model encoded them with (None for an unconditional one): what a prior is fitted to."""
    _check_has_codes(model.module)
    labels = data.labels if model.module.is_conditional else None
    codes = torch.cat([model.encode(data.images[i:i + batch_size].float().div(255),
                                    None if labels is None else labels[i:i + batch_size]).cpu()
                       for i in range(0, len(data), batch_size)])
    return codes, labels


def _fit_and_save_prior(model: Model, data: ImageSet, kind: str, progress: bool = False, **options) -> None:
    _check_prior_choice(model.module, kind)
    options = PRIORS[kind].check_options(**options)  # a bad option fails now, not after the encoding
    codes, labels = training_codes(model, data)
    num_classes = model.module.config.num_classes if labels is not None else None
    started = time.perf_counter()
    if progress:  # the fit runs after the bar has reached its end, up to a minute on a CPU: say so
        print(f"fitting a {kind} latent prior to {len(codes)} training codes (--prior none skips it) ...",
              file=sys.stderr, flush=True)
    save_prior(fit_latent_prior(kind, codes, labels, num_classes, **options), RunDir(model.run_dir).prior)
    if progress:
        print(f"fitted the {kind} prior in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def _check_prior_choice(module: GenerativeModel, kind: str) -> None:
    if kind not in PRIORS:
        raise GenforgeError(f"unknown prior {kind!r}; choose one of: {', '.join(PRIORS)}")
    _check_has_codes(module)


def _check_has_codes(module: GenerativeModel) -> None:
    if not module.is_autoencoder:
        raise GenforgeError(f"model {module.name!r} has no encoder, so no codes to fit a latent prior to; "
                            "priors are for autoencoders such as 'vae'")


def train(model: str = "vae", dataset: str = "fashion-mnist", out: str | Path = "runs/run", *,
          steps: int | None = None, epochs: float | None = None, minutes: float | None = None,
          seed: int = 0, batch_size: int | None = None, data_dir: str | None = None,
          image_size: int | None = None, channels: int | None = None, device: str = "cpu",
          resume: bool = False, progress: bool = True, report: bool = True,
          sample_every: int = 500, log_every: int = 25, checkpoint_minutes: float = 1.0,
          eval_every: int | None = None, eval_n: int = 2000, max_rollbacks: int = 2,
          prior: str | None = None, precision: str | None = None, labels: str | None = None,
          background=None, sync_bn: bool = False, dist_timeout: float = DEFAULT_TIMEOUT_S,
          **model_config) -> Model:
    """Trains a model on a data set into run directory `out` and returns it loaded.

    With `resume=True` the model, data and budget come from `out/config.json`; budget
    arguments given here replace the stored ones. Extra keyword arguments are fields of
    the model's config (for example `latent_dim=32`). With `eval_every`, `eval_n` samples
    are judged against the test split every so many steps (evals.jsonl, a plot in the report).
    A run that diverges (NaN, an exploding loss, a discriminator that wins completely) goes
    back to its last checkpoint with halved learning rates, at most `max_rollbacks` times.
    An autoencoder ends with a latent prior fitted to its codes of the training set: `prior`
    "gmm" (the default for autoencoders), "flow", or "none". With `report`, report.md is written
    last, after the prior is fitted, so its samples are those the model gives. `precision` is "fp32", "bf16" or
    "auto" (bf16 where the hardware runs it fast; see train/precision.py). `background`: the colour
    that emoji's and a folder's transparency is composited onto (white by default), kept in the
    run's config so that everything reading the run's data reads it alike. `labels`: what a
    conditional model is conditioned on, "class" (default), "style" (emoji's vendor) or
    "class+style" (data/labelling.py); a conditional model's num_classes defaults to the number of
    labels the data has (emoji's 9 categories, 2 vendors or 18 pairs; 10 for the digits and clothes).

    Launched by torchrun (`torchrun --nproc_per_node N -m genforge train ...`, or this function in
    each of N processes it started), this process is one rank of a data-parallel job
    (train/distributed.py): `batch_size` is per rank, only rank 0 writes, and `dist_timeout`
    seconds without an answer from another rank end the job. `sync_bn` computes BatchNorm's
    statistics over the global batch (torch's SyncBatchNorm: GPUs only)."""
    group, device = start_distributed(device, dist_timeout)
    finished = False
    try:
        trained = _train(model, dataset, out, group, steps=steps, epochs=epochs, minutes=minutes, seed=seed,
                       batch_size=batch_size, data_dir=data_dir, image_size=image_size, channels=channels,
                       device=device, resume=resume, progress=progress, report=report, sample_every=sample_every,
                       log_every=log_every, checkpoint_minutes=checkpoint_minutes, eval_every=eval_every,
                       eval_n=eval_n, max_rollbacks=max_rollbacks, prior=prior, precision=precision,
                       labels=labels, background=background, sync_bn=sync_bn, model_config=model_config)
        finished = True
        return trained
    finally:
        stop_distributed(group, finished)


def _train(model, dataset, out, group: Group, *, steps, epochs, minutes, seed, batch_size, data_dir, image_size,
           channels, device, resume, progress, report, sample_every, log_every, checkpoint_minutes, eval_every,
           eval_n, max_rollbacks, prior, precision, labels, background, sync_bn, model_config) -> Model:
    run = RunDir(out)
    if resume:
        stored = run.read_config()
        model, model_config = stored["model"], stored["model_config"]
        d, t = stored["data"], stored["train"]
        dataset, data_dir = d["dataset"], data_dir or d.get("data_dir")
        image_size, channels = d["image_size"], d["channels"]
        if steps is None and epochs is None and minutes is None:
            steps, epochs, minutes = t["steps"], t["epochs"], t["minutes"]
        seed, batch_size = t["seed"], _resumed_batch(t, group.world_size, out)
        precision = precision or t.get("precision", "fp32")
        labels = d.get("labels", "class")
        background = d.get("background")
    labels = check_labelling(labels or "class")
    model_class(model).Config.from_dict(model_config)  # bad values fail now, before the data is read
    if sync_bn and torch.device(device).type != "cuda":
        raise ConfigError("--sync-bn needs --device cuda: torch's SyncBatchNorm runs on GPUs only")
    with main_first(group):  # rank 0 decodes and caches the data; the others then map its cache
        data = relabel(load_dataset(dataset, "train", data_dir=data_dir, image_size=image_size, channels=channels,
                                    background=background), labels)
    if "num_classes" not in model_config and model_class(model).is_conditional:  # emoji: 9 categories
        model_config = {**model_config, "num_classes": data.num_classes}
    config = TrainConfig(steps=steps, epochs=epochs, minutes=minutes, batch_size=batch_size, seed=seed,
                         device=device, sample_every=sample_every, log_every=log_every,
                         checkpoint_minutes=checkpoint_minutes, eval_every=eval_every,
                         max_rollbacks=max_rollbacks, precision=precision or DEFAULT_PRECISION)
    torch.manual_seed(seed)  # weight initialisation
    module = build_model(model, **{**model_config, "image_shape": data.shape})
    _check_classes(module, data, dataset)
    if sync_bn:  # same parameters and buffers, so the weights load into the plain model afterwards
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    prior = prior or ("gmm" if module.is_autoencoder else "none")
    if prior != "none":
        _check_prior_choice(module, prior)  # now, not after the training
    if resume and group.is_main:
        delete_prior(run.prior)  # it fits the encoder as it was, not as it will be
    run_info = {"data": describe(data, dataset, data_dir)}
    if takes_background(dataset):
        run_info["data"]["background"] = background or "white"
    if labels != "class":
        run_info["data"]["labels"] = labels
    if sync_bn:
        run_info["sync_bn"] = True
    evaluate = _sample_evaluator(run_info, eval_n, seed, data_dir, group) if eval_every else None
    train_loop(module, data, out, config, run_info=run_info, resume=resume, progress=progress, evaluate=evaluate,
               group=group)
    if not group.is_main:  # rank 0 fits the prior and writes the report
        return load(out, device)
    if prior != "none":
        _fit_and_save_prior(load(out, device), data, prior, progress=progress)
    if report:
        from .report.run_report import write_report
        write_report(out)
    return load(out, device)


def _resumed_batch(stored_train: dict, world_size: int, out) -> int:
    """This rank's batch on --resume: the run's global batch split over the ranks there are now,
    so a run resumed with another number of ranks goes on with the same batches."""
    global_batch = stored_train.get("global_batch_size", stored_train["batch_size"])
    if global_batch % world_size:
        raise RunError(f"{out} was trained with a global batch of {global_batch}, which does not split evenly "
                       f"over {world_size} ranks; resume it with a number of ranks that divides {global_batch}")
    return global_batch // world_size


def _check_classes(module: GenerativeModel, data: ImageSet, dataset: str) -> None:
    """A conditional model needs a class for every label of the data (a rule between config and data)."""
    if module.is_conditional and data.num_classes > module.config.num_classes:
        raise ConfigError(f"{module.config.label}: num_classes must be at least the {data.num_classes} classes "
                          f"of {dataset}, got {module.config.num_classes}")


def _sample_evaluator(run_info: dict, n: int, seed: int, data_dir: str | None, group: Group = SINGLE_PROCESS):
    """Judges n samples (fixed seed) of the model being trained against the test split.

    In a distributed run each rank samples and embeds its share of the n (its own seed), and
    rank 0 gathers the features and computes the metrics; the other ranks get {}."""
    from .metrics.evaluate import evaluate_embedding
    from .metrics.extractors import Embedding, get_extractor
    from .metrics.feature_net import load_feature_net

    dataset = run_info["data"]["dataset"]
    load_feature_net(dataset)  # fail now, not after the first eval_every steps
    share = n // group.world_size + (1 if group.rank < n % group.world_size else 0)

    def evaluate(module: GenerativeModel) -> dict:
        images = Model(module, run_info).sample(share, seed=seed + 7919 * group.rank)
        fake = get_extractor("classifier", dataset).embed(images)
        parts = [group.gather(t) if t is not None else None for t in (fake.features, fake.probs, fake.style_probs)]
        if not group.is_main:
            return {}
        result = evaluate_embedding(Embedding(*parts), int(images.shape[-1]), dataset, data_dir=data_dir,
                                    background=run_info["data"].get("background"))
        return {k: result[k] for k in ("fid", "kid", "precision", "recall", "density", "coverage",
                                       "classifier_score", "classes_covered", "n_fake")}
    return evaluate


def describe(data: ImageSet, dataset: str, data_dir: str | None) -> dict:
    c, h, _ = data.shape
    return {"dataset": dataset, "split": "train", "image_size": h, "channels": c, "num_images": len(data),
            "classes": data.classes, "data_dir": str(data_dir) if data_dir else None}


__all__ = ["Model", "fit_prior", "load", "train", "RunError"]
