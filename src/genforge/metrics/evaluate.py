"""The evaluation pipeline: images -> features (once) -> every metric, beside the floor.

The floor is what real images score against real images with the same network: a random 10k
of the train split (all of it where it is smaller, as emoji's 6,824) against the test split.
A generator's FID means little without it.

Images smaller than the data set's own (emoji samples at 32x32 beside its native 64x64) are
judged against real images brought to the same size by the same antialiased resize that
training used, floor included; the feature network then reads both sides upsampled.
Real-side features and the floor depend only on the feature network and the data, so they
are computed once and cached on disk under a hash of both.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import torch

from ..data import cache_dir, load_dataset
from ..data.labelling import relabel
from ..errors import GenforgeError
from ..train.checkpoint import atomic_write
from .classifier_score import ClassHistogram, ClassifierScore, ConditionalAccuracy
from .density_coverage import DensityCoverage
from .extractors import Embedding, get_extractor
from .fid import FID
from .kid import KID
from .memorisation import TrainingDistance
from .precision_recall import PrecisionRecall

FLOOR_N = 10_000


def _digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=12)
    for p in parts:
        h.update(p)
    return h.hexdigest()


def real_split(dataset: str, split: str, n: int | None = None, data_dir=None, image_size: int | None = None,
               channels: int | None = None, background=None):
    """Images and labels of a split, or a fixed random n of them (resized to `image_size` where given;
    transparency on `background`, a run's own, for emoji and folders)."""
    data = load_dataset(dataset, split, data_dir=data_dir, image_size=image_size, channels=channels,
                        background=background)
    if n is not None and n < len(data):
        data = data.subset(torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:n])
    return data


def real_embedding(extractor, dataset: str, split: str, n: int | None = None, data_dir=None,
                   image_size: int | None = None, background=None) -> Embedding:
    """Embedding of a real split, cached on disk under a hash of the network and the images."""
    data = real_split(dataset, split, n, data_dir, image_size, background=background)
    key = _digest(extractor.digest().encode(), data.images.numpy().tobytes())
    path = cache_dir() / "features" / f"{dataset}-{split}-{len(data)}-{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return Embedding(torch.from_numpy(z["features"]), torch.from_numpy(z["probs"]))
    except (OSError, ValueError, KeyError):
        pass  # not cached yet, or a damaged cache file: compute again
    emb = extractor.embed(data.images)
    buffer = io.BytesIO()
    np.savez(buffer, features=emb.features.numpy(), probs=emb.probs.numpy())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())
    return emb


def compare(fake: Embedding, real: Embedding, real_labels: torch.Tensor,
            requested: torch.Tensor | None = None, class_metrics: bool = True) -> dict:
    """Every sample-set metric of `fake` against `real` (class metrics need the data set's classifier)."""
    fid, kid = FID(), KID()
    pr, dc = PrecisionRecall(k=3), DensityCoverage(k=5)
    for metric in (fid, kid, pr, dc):
        metric.update(real.features, real=True)
        metric.update(fake.features, real=False)
    out = {"fid": fid.compute(), **kid.compute(), **pr.compute(), **dc.compute()}
    if not class_metrics:
        return out
    num_classes = real.probs.shape[1]
    real_dist = torch.bincount(real_labels, minlength=num_classes).double()
    score, hist = ClassifierScore(), ClassHistogram(num_classes, real_distribution=real_dist / real_dist.sum())
    score.update(fake.probs)
    hist.update(fake.probs)
    out.update({**score.compute(), **hist.compute()})
    if requested is not None:
        acc = ConditionalAccuracy(num_classes)
        acc.update(fake.probs, requested)
        out.update(acc.compute())
    return out


def floor(extractor, dataset: str, data_dir=None, image_size: int | None = None, background=None) -> dict:
    """The set metrics of 10k real train images (all, where the split is smaller) against the
    test split (cached), both at `image_size` where given."""
    test = real_split(dataset, "test", data_dir=data_dir, image_size=image_size, background=background)
    key = _digest(extractor.digest().encode(), test.images.numpy().tobytes(), b"floor-v1")
    path = cache_dir() / "features" / f"{dataset}-floor-{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    train = real_embedding(extractor, dataset, "train", FLOOR_N, data_dir, image_size, background)
    result = compare(train, real_embedding(extractor, dataset, "test", data_dir=data_dir, image_size=image_size,
                                           background=background),
                     test.labels, class_metrics=False)
    result["n_train"] = len(train.features)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(result).encode())
    return result


def evaluate_images(images: torch.Tensor, dataset: str, requested: torch.Tensor | None = None,
                    data_dir=None, features: str = "classifier", copying: bool = False, background=None) -> dict:
    """All sample metrics of `images` (uint8 or [0, 1] floats) against `dataset`'s test split.

    `features`: "classifier" (the data set's shipped network; all metrics) or "inception"
    (the FID convention's network, when available; the set metrics and the Inception Score).
    `copying`: also `nn_ratio` and `copies` against the training split (classifier features).
    Images smaller than the data set's (emoji at 32x32) are compared with real images resized to theirs.
    `background`: the colour emoji's or a folder's transparency is composited onto (a run's own; white).
    """
    extractor = get_extractor(features, dataset)
    if len(images) < 2:
        raise GenforgeError(f"need at least 2 images to compare distributions, got {len(images)}")
    return evaluate_embedding(extractor.embed(images), int(images.shape[-1]), dataset, requested, data_dir,
                              features, copying, background)


def evaluate_embedding(fake: Embedding, size: int, dataset: str, requested: torch.Tensor | None = None,
                       data_dir=None, features: str = "classifier", copying: bool = False, background=None) -> dict:
    """`evaluate_images` for images already embedded with `get_extractor(features, dataset)` at
    `size` pixels: what several ranks of a distributed run gather after each embedded its share."""
    extractor = get_extractor(features, dataset)
    test = real_split(dataset, "test", data_dir=data_dir, image_size=size, background=background)
    out = compare(fake, real_embedding(extractor, dataset, "test", data_dir=data_dir, image_size=size,
                                       background=background), test.labels,
                  requested, class_metrics=features == "classifier")
    if features == "inception":
        score = ClassifierScore(splits=10)
        score.update(fake.probs)
        result = score.compute()
        out["inception_score"], out["inception_score_std"] = result["classifier_score"], result["classifier_score_std"]
    if copying and features == "classifier":
        out.update(_training_distance(fake, extractor, dataset, data_dir, size, background))
    out["floor"] = floor(extractor, dataset, data_dir, size, background)
    out["n_fake"], out["n_real"] = len(fake.features), len(test)
    out["image_size"] = size
    out["feature_net"] = extractor.describe()
    return out


def evaluate_model(model, n: int = 10_000, seed: int = 0, data_dir=None, nll_images: int = 1000,
                   nll_k: int = 100, features: str = "classifier", prior: str = "auto",
                   temperature: float = 1.0) -> dict:
    """Samples n images from a loaded model (`genforge.load`) and reports every metric that
    applies: the sample metrics, and for autoencoders reconstruction and likelihood on the test split.
    `prior` picks where an autoencoder's z come from, `temperature` their spread (see `Model.sample`)."""
    from .nll import SCORED, ImportanceNLL
    from .reconstruction import ReconstructionError

    dataset = model.run_config.get("data", {}).get("dataset")
    if not dataset:
        raise GenforgeError("the run does not say which data set it was trained on")
    requested = None
    if model.module.is_conditional:
        num_classes = len(model.run_config["data"]["classes"])
        requested = torch.arange(n) % num_classes  # balanced: every class asked for equally
    images = model.sample(n, seed=seed, labels=requested, prior=prior, temperature=temperature)
    out = {"model": model.name, "dataset": dataset, "prior": model.prior_kind if prior == "auto" else prior,
           "temperature": temperature,
           # a run conditioned on emoji's vendor (data/labelling.py) asks for vendors, which the
           # class head does not read: no conditional accuracy for it
           **evaluate_images(images, dataset, requested if _labelling(model) == "class" else None, data_dir,
                             features, copying=True,
                             background=model.run_config["data"].get("background"))}
    if model.module.is_autoencoder:
        d = model.run_config["data"]
        test_split = real_split(dataset, "test", data_dir=data_dir, image_size=d.get("image_size"),
                                channels=d.get("channels"), background=d.get("background"))
        test = test_split.images.float().div(255)
        rec = ReconstructionError()
        rec.update(test, reconstruct(model, test_split))
        out.update({f"recon_{k}": v for k, v in rec.compute().items()})
        out.update(decoded_codes(model, dataset, n, data_dir, features))
        # A conditional model's likelihood is p(x | label): not comparable with p(x), so not reported.
        scored = getattr(model.module.config, "likelihood", "bernoulli") in SCORED
        if scored and not model.module.is_conditional and nll_images > 0:
            nll = ImportanceNLL(model.module, k=nll_k, seed=seed)
            nll.update(test[:nll_images].to(model.device))
            out.update(nll.compute())
            out["nll_images"] = min(nll_images, len(test))
    return out


DECODED = ("fid", "precision", "recall", "coverage")


def training_distance(images: torch.Tensor, dataset: str, data_dir=None) -> dict:
    """`nn_ratio` and `copies` (metrics.memorisation) of images against the training split,
    beside the test split's images, in the data set's classifier features."""
    extractor = get_extractor("classifier", dataset)
    return _training_distance(extractor.embed(images), extractor, dataset, data_dir, int(images.shape[-1]))


def _training_distance(fake: Embedding, extractor, dataset: str, data_dir=None, image_size: int | None = None,
                       background=None) -> dict:
    metric = TrainingDistance()
    metric.update(real_embedding(extractor, dataset, "train", data_dir=data_dir, image_size=image_size,
                                 background=background).features, "train")
    metric.update(real_embedding(extractor, dataset, "test", data_dir=data_dir, image_size=image_size,
                                 background=background).features, "heldout")
    metric.update(fake.features, "fake")
    return metric.compute()


def decoded_codes(model, dataset: str, n: int = 10_000, data_dir=None, features: str = "classifier") -> dict:
    """The sample metrics of n training images encoded and decoded (`decoded_fid`, ...).

    Those are the samples a perfect latent prior would give this decoder, so they split what is
    missing from an autoencoder's samples: the gap from the sampled metrics to these is the
    prior's, the gap from these to the real floor the decoder's (Fashion-MNIST cvae-gan: recall
    0.43 sampled, 0.45 decoded; BENCHMARKS.md). A model loaded from a run reads the real images at
    the size it trained on; any other autoencoder (encode/decode only) at the data set's own."""
    d = (getattr(model, "run_config", None) or {}).get("data", {})
    decoded = reconstruct(model, real_split(dataset, "train", n, data_dir, d.get("image_size"), d.get("channels"),
                                            d.get("background")))
    result = evaluate_images(decoded, dataset, data_dir=data_dir, features=features, background=d.get("background"))
    return {f"decoded_{k}": result[k] for k in DECODED}


def reconstruct(model, data, batch_size: int = 1000) -> torch.Tensor:
    """An autoencoder's reconstructions (posterior means decoded) of an ImageSet, in [0, 1] on the CPU;
    a conditional model is given the images' labels."""
    if model.module.is_conditional:
        data = relabel(data, _labelling(model))  # a vendor-conditioned run encodes under the vendor
    labels = data.labels if model.module.is_conditional else None
    out = []
    for i in range(0, len(data), batch_size):
        x, y = data.images[i:i + batch_size].float().div(255), None if labels is None else labels[i:i + batch_size]
        out.append(model.decode(model.encode(x, y), y).cpu())
    return torch.cat(out)


def _labelling(model) -> str:
    """What a run's labels are ("class", "style", "class+style": data/labelling.py)."""
    return ((getattr(model, "run_config", None) or {}).get("data", {})).get("labels", "class")
