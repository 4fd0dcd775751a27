"""The models a server answers for, by name, and what each can do.

A model's name is its run directory's basename (`runs/cgan-mnist` -> `cgan-mnist`; two runs of
one basename become `x` and `x-2`). Requests name models only through this registry: no path is
ever built from a request, so no request can reach a file the operator did not load.

What is costly and not always needed is made at first use and kept: a model's `Editor` (its
classifier, training codes, directions) and the test split of its data (for the page's "pick a
test image"). Both are built under a lock, as routes ask for them from several worker threads.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from .. import api
from ..data import ImageSet, load_dataset
from ..data.labelling import relabel
from ..detect import Detector, load_detector
from ..errors import GenforgeError
from .errors import ApiError

CAPABILITIES = ("sample", "classes", "encode", "invert", "directions", "edit", "detect")


def unique_names(run_dirs: list[str | Path]) -> list[str]:
    """Each run directory's basename, made unique with -2, -3, ... in the order given."""
    names: list[str] = []
    for run_dir in run_dirs:
        base = Path(run_dir).expanduser().resolve().name or "model"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


class Registry:
    """Loaded models by name, the detector (or None), and lazily built editors and test images."""

    def __init__(self, models: dict[str, api.Model] | None = None, detector: Detector | None = None,
                 detector_card: dict | None = None):
        self.models = dict(models or {})
        self.detector = detector
        self.detector_card = detector_card or {}
        self._editors: dict[str, object] = {}
        self._test_sets: dict[tuple, ImageSet] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, run_dirs: list[str | Path], detector_dir: str | Path | None = None,
             device: str = "cpu") -> Registry:
        """Loads every run directory (and the detector); a directory that is not a run, or a
        detector directory that is not a detector, is a GenforgeError in one line."""
        if not run_dirs:
            raise GenforgeError("give at least one run directory to serve (genforge serve RUN_DIR...)")
        models = {name: api.load(run_dir, device) for name, run_dir in zip(unique_names(run_dirs), run_dirs)}
        detector, card = load_detector(detector_dir, device) if detector_dir is not None else (None, None)
        return cls(models, detector, card)

    # --- names ---------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str) -> api.Model:
        """The model called `name`; ApiError 404 listing the loaded ones otherwise."""
        model = self.models.get(name)
        if model is None:
            loaded = ", ".join(self.models) or "none"
            raise ApiError(404, f"unknown model {name!r}; loaded: {loaded}", "name")
        return model

    # --- what a model is and can do --------------------------------------------------------------
    def class_names(self, name: str) -> list[str] | None:
        """The names of the run's labels (data classes, styles or pairs: data/labelling.py), or None."""
        return list(self.get(name).run_config.get("data", {}).get("classes") or []) or None

    def judges(self, model: api.Model) -> bool:
        """Whether the loaded detector judges images of this model's shape."""
        return self.detector is not None and tuple(self.detector.image_shape) == tuple(model.image_shape)

    def capabilities(self, name: str) -> list[str]:
        """What the model can do: always sample, invert (an autoencoder by its encoder, a GAN by
        latent search), edit and walk directions (SeFa for a GAN, PCA of codes otherwise); `classes`
        when sampling takes a label, `encode` when it has an encoder (fast inversion), `detect` when
        the loaded detector judges its images."""
        model = self.get(name)
        module = model.module
        has = {"sample": True, "classes": module.is_conditional, "encode": module.is_autoencoder,
               "invert": True, "directions": True, "edit": True, "detect": self.judges(model)}
        return [c for c in CAPABILITIES if has[c]]

    def info(self, name: str) -> dict:
        """The ModelInfo of `name` (routes_core.ModelInfo)."""
        model = self.get(name)
        return {"name": name, "family": model.name, "image_shape": list(model.image_shape),
                "conditional": model.module.is_conditional, "classes": self.class_names(name),
                "latent_dim": int(model.module.config.latent_dim), "prior": model.prior_kind,
                "capabilities": self.capabilities(name)}

    def detector_info(self) -> dict | None:
        if self.detector is None:
            return None
        return {"image_shape": list(self.detector.image_shape), "threshold": float(self.detector_card["threshold"])}

    # --- built at first use ----------------------------------------------------------------------
    def editor(self, name: str):
        """The model's `genforge.edit.Editor`, built at first use and kept (its classifier, training
        codes and directions are costly and the same for every request). Built as `genforge edit`
        builds it: the default latent search, the run's fitted prior, and the loaded detector as the
        realism judge where it judges the model's images. Its search settings are shared: an edit
        with settings of its own works on a copy (serve/editing.py's run_edit), so concurrent edits
        do not change each other's."""
        from ..edit import Editor, FitConfig
        model = self.get(name)
        with self._lock:
            editor = self._editors.get(name)
            if editor is None:
                detector = self.detector if self.judges(model) else None
                editor = self._editors[name] = Editor(model, FitConfig(seed=0), detector=detector)
            return editor

    def test_set(self, name: str) -> ImageSet:
        """The test split of the model's data, read as training read the training split (size,
        channels, background, labels), loaded at first use and shared by runs of the same data."""
        d = self.get(name).run_config["data"]
        key = (d["dataset"], d.get("data_dir"), d["image_size"], d["channels"], d.get("background"),
               d.get("labels", "class"))
        with self._lock:
            data = self._test_sets.get(key)
            if data is None:
                test = load_dataset(d["dataset"], "test", data_dir=d.get("data_dir"), image_size=d["image_size"],
                                    channels=d["channels"], background=d.get("background"))
                data = self._test_sets[key] = relabel(test, d.get("labels", "class"))
            return data

    def test_images(self, name: str, start: int, n: int) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
        """uint8 images (k, C, H, W), their labels (or None) and indices: test images start..start+n-1
        (fewer at the end of the split). ApiError 422 for a start past the end."""
        data = self.test_set(name)
        if start >= len(data):
            raise ApiError(422, f"start must be below {len(data)}, the number of test images, got {start}", "start")
        stop = min(start + n, len(data))
        labels = data.labels[start:stop] if data.labels is not None else None
        return data.images[start:stop], labels, list(range(start, stop))


__all__ = ["CAPABILITIES", "Registry", "unique_names"]
