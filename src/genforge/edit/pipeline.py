"""The Editor: one trained model plus what its edits need from outside it - the data set's
classifier (to judge edits, and to label samples), its training images (for attribute vectors
and the inpainting baselines), the settings of latent search, optionally a learned inversion
encoder (`hybrid`) and a trained detector as the judge of realism.

    editor = Editor(genforge.load("runs/vae"))
    x = as_float(read_images("mnist:test:0-15", editor.image_shape))
    eights = editor.attribute(x, target=8)

Every edit takes and returns images (N, C, H, W) in [0, 1]; the operations themselves are
plain functions in the modules beside this one.
"""

from __future__ import annotations

from functools import cached_property

import torch

from ..api import Model
from ..data import ImageSet, load_dataset
from ..detect.detector import Detector
from ..errors import GenforgeError
from ..data.labelling import relabel
from ..metrics.feature_net import load_feature_net, shipped_feature_nets
from . import colour
from .attribute import PROPERTIES, class_means, property_vector, sampled_codes, toward_class
from .calibrate import PropertyEdit, PropertyModel, calibrated_edit, held_names, scalar_measure, table
from .directions import pca_directions, sefa_directions
from .directions import traverse as traverse_codes
from .inpaint import inpaint as inpaint_images
from .inpaint import mean_fill, nearest_fill
from .interpolate import interpolate as interpolate_codes
from .invert import encode, generate
from .invert import invert as invert_images
from .swap_class import TRANSPORT_STRENGTH, swap_class as swap_images
from .transport import ClassGaussians
from .classify import class_reads
from .fit import FitConfig
from .encoder import EncoderConfig, InversionEncoder, inversion_encoder
from .reader import Reader, can_read
from .realism import detector_realism, realism

ATTRIBUTE_METHODS = ("auto", "transport", "vector")
ATTRIBUTE_STRENGTH = 1.5  # a little past the target class: read more surely, nearer real images (docstring below)
GROUP_N = 5000  # codes per attribute-vector estimate: class means settle well before this
PROPERTY_N = 2000  # codes per property regression (calibrate.py): at most 128 slopes per property to fit


class Editor:
    """Every edit of one trained model, with what the edits need around it: the data set's
    classifier (to read classes before and after), the run's training set (class codes,
    neighbours), the latent search settings and the realism check.

        editor = Editor(genforge.load("runs/vae"))
        x = as_float(read_images("mnist:test:0-15", editor.image_shape))
        eights = editor.attribute(x, target=8)

    Images go in and come out as floats (N, C, H, W) in [0, 1] on the CPU.
    """

    def __init__(self, model: Model, fit: FitConfig | None = None, progress: bool = False, seed: int = 0,
                 hybrid: bool = False, detector: Detector | None = None, fitted_prior: bool = True,
                 neighbours: int = 0):
        """`hybrid`: start a GAN's latent search from a learned inversion encoder (trained on the
        first use, then kept in the run directory). `detector`: judge realism with it rather than
        with the model's discriminator. `fitted_prior`: inpaint an autoencoder by searching under
        the run's fitted latent prior where it has a density (a GMM), not N(0, I). `neighbours`:
        inpaint starting also from the codes of that many training images nearest on the known
        pixels (an autoencoder's own, a GAN's through the hybrid encoder)."""
        self.model = model.module
        has_density = model.prior is not None and hasattr(model.prior, "log_prob")
        self.search_prior = model.prior if fitted_prior and has_density else None
        self.run_dir = model.run_dir
        self.data = model.run_config["data"]
        self.fit = fit or FitConfig(seed=seed)
        self.progress = progress
        self.seed = seed
        self.hybrid = hybrid and not self.model.is_autoencoder  # an autoencoder has its own encoder
        if neighbours < 0:
            raise GenforgeError(f"neighbours must be 0 or more, not {neighbours}")
        if neighbours and not (self.model.is_autoencoder or self.hybrid):
            raise GenforgeError(f"model {self.model.name!r} has no encoder for its training neighbours' codes; "
                                "add the hybrid inversion encoder (--hybrid)")
        self.neighbours = neighbours
        if detector is not None:
            c = detector.config
            if (c.in_channels, c.image_size, c.image_size) != self.image_shape:
                raise GenforgeError(f"the detector judges {c.in_channels}x{c.image_size}x{c.image_size} images but "
                                    f"model {self.model.name!r} makes {'x'.join(map(str, self.image_shape))}")
        self.detector = detector

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.model.config.image_shape)

    @property
    def labelling(self) -> str:
        """What the run's labels are: "class", "style" or "class+style" (data/labelling.py)."""
        return self.data.get("labels", "class")

    @property
    def class_names(self) -> list[str]:
        """The names of the run's labels (the data set's classes, or its styles, or the pairs)."""
        return list(self.data.get("classes") or [])

    @property
    def background(self) -> tuple[float, float, float]:
        """The colour (r, g, b in [0, 1]) the figures of the run's images stand on, for the colour
        properties: the run's own where it names one, else white for colour images and black for
        the grayscale data sets (white digits on black)."""
        bg = self.data.get("background")
        if bg is None:
            grey_registry = self.image_shape[0] == 1 and not str(self.data["dataset"]).startswith("folder:")
            return (0.0, 0.0, 0.0) if grey_registry else colour.WHITE
        from ..data.folder import parse_background
        return tuple(v / 255 for v in parse_background(bg))

    @cached_property
    def feature_net(self) -> Reader | None:
        """The data set's shipped classifier seen through the run's image size and labels
        (reader.py), or None where genforge ships none that can read these images."""
        if self.data["dataset"] not in shipped_feature_nets():
            return None
        net, _ = load_feature_net(self.data["dataset"])
        if not can_read(net, self.image_shape, self.labelling):
            return None
        return Reader(net, self.image_shape[1], self.labelling)

    def labelled(self, images: ImageSet) -> ImageSet:
        """Input images with labels of the run's kind (a vendor-conditioned run's are the vendors)."""
        return relabel(images, self.labelling)

    def class_index(self, target: int | str) -> int:
        """The label number of `target`: a number, or one of the run's class names (any case)."""
        if isinstance(target, int):
            return target
        names = [n.lower() for n in self.class_names]
        if target.strip().lower() in names:
            return names.index(target.strip().lower())
        raise GenforgeError(f"no class {target!r} in this run; its classes: " + ", ".join(
            f"{i} {n}" for i, n in enumerate(self.class_names)))

    def swap_targets(self, target: int | str, source: torch.Tensor) -> torch.Tensor:
        """The label (N,) each image swaps to. A run on category/vendor pairs also takes a vendor
        (or a category) alone: each image keeps its category (or vendor) and takes the other."""
        if isinstance(target, str) and self.labelling == "class+style":
            styles = [n.lower() for n in (self._style_names or [])]
            categories = [n.lower() for n in (self._category_names or [])]
            word = target.strip().lower()
            s = len(styles)
            if word in styles:
                return source // s * s + styles.index(word)
            if word in categories:
                return categories.index(word) * s + source % s
        return torch.full_like(source, self.class_index(target))

    @property
    def _style_names(self) -> list[str] | None:
        names = self.class_names
        return list(dict.fromkeys(n.rsplit("/", 1)[1] for n in names)) if names and "/" in names[0] else None

    @property
    def _category_names(self) -> list[str] | None:
        names = self.class_names
        return list(dict.fromkeys(n.rsplit("/", 1)[0] for n in names)) if names and "/" in names[0] else None

    def classifier(self) -> Reader:
        """The data set's shipped classifier (GenforgeError where there is none)."""
        if self.feature_net is None:
            raise GenforgeError(f"no classifier for {self.data['dataset']!r} images of shape {self.image_shape}; "
                                "this edit needs one")
        return self.feature_net

    @cached_property
    def train(self) -> ImageSet:
        """The run's training images, read as it read them."""
        d = self.data
        return relabel(load_dataset(d["dataset"], "train", data_dir=d.get("data_dir"), image_size=d["image_size"],
                                    channels=d["channels"], background=d.get("background")), self.labelling)

    @cached_property
    def train_pixels(self) -> torch.Tensor:
        """The training images as floats in [0, 1], converted once: inpainting's neighbours and
        baselines search all of them on every call."""
        return self.train.images.float() / 255

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    # --- judging ----------------------------------------------------------------------------
    def reads(self, x: torch.Tensor) -> torch.Tensor | None:
        """The class the classifier reads in each image (N,), or None without a classifier."""
        return None if self.feature_net is None else class_reads(self.feature_net, x)

    @property
    def realism_judge(self) -> str | None:
        """Who answers `realism`: "detector", "discriminator", or None (nobody)."""
        if self.detector is not None:
            return "detector"
        return "discriminator" if self.model.has_discriminator else None

    def realism(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor | None:
        """P(real) of each image by the detector if the editor has one, else by the discriminator.
        A conditional discriminator judges unlabelled images under the classes the classifier
        reads in them (None without a classifier)."""
        if self.detector is not None:
            return detector_realism(self.detector, x)
        if self.model.is_conditional and labels is None:
            labels = self.reads(x)
            if labels is None:
                return None
        return realism(self.model, x, labels)

    @cached_property
    def encoder(self) -> InversionEncoder | None:
        """The learned first guess of latent search (hybrid inversion), or None."""
        if not self.hybrid:
            return None
        return inversion_encoder(self.model, self.run_dir, EncoderConfig(seed=self.seed), self.progress)

    def source_labels(self, images: ImageSet) -> torch.Tensor:
        """The true labels where the input has them, else what the classifier reads."""
        if images.labels is not None:
            return images.labels
        return class_reads(self.classifier(), images.images.float() / 255)

    # --- edits ------------------------------------------------------------------------------
    def invert(self, x: torch.Tensor, labels: torch.Tensor | None = None, refine: bool = False) -> torch.Tensor:
        """Codes (N, latent_dim) for images: the encoder's posterior means for an autoencoder,
        latent search (from the hybrid encoder's guess with `hybrid=True`) for a GAN.
        A conditional model needs the images' labels."""
        self._needs_labels(labels)
        return invert_images(self.model, x, labels, self.feature_net, self.fit, refine, self.progress,
                             self.encoder)

    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The images decoded from their own codes: how well the model can represent them."""
        return generate(self.model, self.invert(x, labels), labels)

    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, steps: int = 8, method: str = "slerp",
                    labels0: torch.Tensor | None = None, labels1: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (steps, N, C, H, W) from each x0 to each x1 (for a conditional model the label
        switches half way, as a label cannot be blended)."""
        z0, z1 = self.invert(x0, labels0), self.invert(x1, labels1)
        codes = interpolate_codes(z0, z1, steps, method)
        frames = []
        for t in range(steps):
            labels = labels0 if t < steps / 2 else labels1
            frames.append(generate(self.model, codes[:, t], labels))
        return torch.stack(frames)

    def attribute(self, x: torch.Tensor, target: int | str, source: torch.Tensor | None = None,
                  strength: float = ATTRIBUTE_STRENGTH, method: str = "auto", amount: float | None = None,
                  labels: torch.Tensor | None = None) -> torch.Tensor:
        """x moved toward class `target` from classes `source` (N,) (default: what the classifier
        reads), or along a pixel property ("thickness", "slant", "hue", "saturation", "brightness",
        "area"): by `amount` of it (`change_property`: measured and calibrated), or without an amount
        by `strength` times its attribute vector (a negative strength reverses it). A conditional
        model edits properties only (its codes hold style, not class), under the images' `labels`.

        `method` for a class: "vector" adds the difference of the two classes' mean codes;
        "transport" moves each code by the optimal-transport map between Gaussians fitted to the
        two classes' codes; "auto" is transport for an autoencoder, where it read the target more
        often and nearer real images in the benchmark, and the vector for a GAN, where the two
        did equally (BENCHMARKS.md, class-change blocks). `strength`: how far, in multiples of
        that move (default 1.5: a little past the target class, which the classifier reads more
        surely, and for the transport also the edits nearest real target-class images in FID)."""
        if isinstance(target, str) and amount is not None:
            return self.change_property(x, target, amount, labels).images
        if self.model.is_conditional and not isinstance(target, str):
            raise GenforgeError(f"model {self.model.name!r} is conditional: its codes hold style, not class; "
                                "use swap-class to change the class")
        if method not in ATTRIBUTE_METHODS:
            raise GenforgeError(f"unknown attribute method {method!r}; choose one of: {', '.join(ATTRIBUTE_METHODS)}")
        if isinstance(target, str) and method == "transport":
            raise GenforgeError(f"attribute {target!r} moves along a vector; the transport method is for classes")
        if method == "auto":
            method = self.default_attribute_method
        if isinstance(target, str):
            if target == "hue":
                raise GenforgeError("hue goes round a circle, so it has no high and low end to move toward; "
                                    "give an amount, e.g. --to hue=+0.2")
            z = self.invert(x, labels)
            codes, values = self._property_codes(target)
            return generate(self.model, z + strength * property_vector(codes, values), labels)
        z = self.invert(x)
        num_classes = self.classifier().config.num_classes
        if not 0 <= target < num_classes:
            raise GenforgeError(f"class {target} does not exist; {self.data['dataset']} has classes "
                                f"0-{num_classes - 1}")
        source = self.reads(x) if source is None else source
        targets = torch.full_like(source, target)
        if method == "transport":
            moved = z + strength * (self.class_gaussians.transport(z, source, targets) - z)
        else:
            codes, labels = self.labelled_codes
            moved = toward_class(z, source, target, class_means(codes, labels, num_classes), strength)
        return generate(self.model, moved)

    def change_property(self, x: torch.Tensor, name: str, amount: float,
                        labels: torch.Tensor | None = None) -> PropertyEdit:
        """x with property `name` changed by `amount` (colour.py gives the units: hue in fractions
        of the colour circle, the others on their own 0..1 scale) and the other properties held, the
        step calibrated per image by a line search (calibrate.py). Returns the images with what was
        achieved, measured from the model's reconstruction of each input."""
        names = held_names(self.image_shape[0], name)
        self._needs_labels(labels)
        z = self.invert(x, labels)
        return calibrated_edit(z, lambda codes: self._decode(codes, labels), names, name, amount, self.background,
                               fitted=self.property_model(names))

    def _decode(self, codes: torch.Tensor, labels: torch.Tensor | None, batch: int = 500) -> torch.Tensor:
        """Images of codes, each group of len(labels) codes under those labels (a line search's
        candidates), in batches; gradients flow through where they are enabled (local slopes)."""
        labels = None if labels is None else labels.repeat(len(codes) // len(labels)).to(self.model.device)
        return torch.cat([self.model.generate(codes[i:i + batch].to(self.model.device),
                                              None if labels is None else labels[i:i + batch]).cpu()
                          for i in range(0, len(codes), batch)])

    def property_model(self, names: tuple[str, ...]) -> PropertyModel:
        """How the properties `names` follow the code, fitted once per set of names on PROPERTY_N
        codes: encoded training images for an autoencoder, prior draws for a GAN."""
        if names not in self._property_models:
            codes, images, labels = self._group(PROPERTY_N)
            num = self.model.config.num_classes if labels is not None else 0
            self._property_models[names] = PropertyModel.fit(names, codes, table(names, images, self.background),
                                                             labels, num)
        return self._property_models[names]

    @cached_property
    def _property_models(self) -> dict:
        return {}

    def _group(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """n codes, their images (what the model decodes them to) and, for a conditional model, labels."""
        generator = self._generator()
        if self.model.is_autoencoder:
            train = self.train.subset(torch.randperm(len(self.train), generator=generator)[:n])
            labels = train.labels if self.model.is_conditional else None
            if self.model.is_conditional and labels is None:
                raise GenforgeError(f"the training images of {self.data['dataset']!r} have no labels")
            codes = encode(self.model, train.images.float() / 255, labels)
        else:
            codes = self.model.latent(n, generator).cpu()
            labels = self.model.random_labels(n, generator).cpu() if self.model.is_conditional else None
        return codes, generate(self.model, codes, labels), labels

    @property
    def default_attribute_method(self) -> str:
        return "transport" if self.model.is_autoencoder else "vector"

    def swap_class(self, x: torch.Tensor, source: torch.Tensor, target: int, move_code: bool = True,
                   strength: float = TRANSPORT_STRENGTH) -> torch.Tensor:
        """x of classes `source` redrawn as class `target`; with `move_code` a conditional
        autoencoder's code also moves from the source class's codes to the target's, `strength`
        times the transport map's move (see `swap_class`)."""
        classes = self.class_gaussians if self.moves_code_on_swap(move_code) else None
        return swap_images(self.model, x, source, target, self.feature_net, self.fit, self.progress,
                           self.encoder, classes, strength)

    def moves_code_on_swap(self, move_code: bool = True) -> bool:
        """Whether a class swap moves the code as well as the label: a conditional GAN's codes are
        prior draws that hold no class, so only a conditional autoencoder's do."""
        return move_code and self.model.is_autoencoder and self.model.is_conditional

    def inpaint(self, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor | None = None,
                blend: float = 0.0, samples: int = 1) -> torch.Tensor:
        """x with the masked pixels filled; a conditional model without `labels` finds the class."""
        train, encoder = None, None
        if self.neighbours:  # only then: a GAN's encoder is trained on first use, minutes on a CPU
            train, encoder = (self.train_pixels, self.train.labels), self.encoder
        return inpaint_images(self.model, x, mask, labels, blend, self.fit, samples, self.search_prior, self.progress,
                              self.neighbours, train, encoder)

    def baselines(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two plain completions every inpainting is compared with."""
        train = self.train_pixels
        return {"mean fill": mean_fill(x, mask, train), "nearest": nearest_fill(x, mask, train)}

    def directions(self, method: str, k: int, x: torch.Tensor | None = None,
                   labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """k unit directions (k, D) and their scales: "sefa" from the first layer's weights, "pca"
        from the codes of images x (at least 2; a conditional model inverts them under `labels`)."""
        if method == "sefa":
            return sefa_directions(self.model, k)
        if method == "pca":
            return pca_directions(self.invert(x, labels), k)
        raise GenforgeError(f"unknown direction method {method!r}; choose pca or sefa")

    def traverse(self, z: torch.Tensor, dirs: torch.Tensor, scales: torch.Tensor, steps: int = 7,
                 span: float = 3.0, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (k, steps, C, H, W) walking from code z (D,) along each direction."""
        codes = traverse_codes(z, dirs, scales, steps, span)
        k = len(dirs)
        labels = None if labels is None else labels.expand(k * steps)
        return generate(self.model, codes.flatten(0, 1), labels).unflatten(0, (k, steps))

    # --- where group codes come from ----------------------------------------------------------
    @cached_property
    def labelled_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes with class labels: encoded training images for an autoencoder (a conditional one
        encodes each under its label), prior draws labelled by the classifier for a GAN
        (inverting thousands of images would take minutes)."""
        if self.model.is_autoencoder:
            train = self.train.subset(torch.randperm(len(self.train), generator=self._generator())[:GROUP_N])
            if train.labels is None:
                raise GenforgeError(f"the training images of {self.data['dataset']!r} have no labels")
            given = train.labels if self.model.is_conditional else None
            return encode(self.model, train.images.float() / 255, given), train.labels
        z, _, reads = sampled_codes(self.model, self.classifier(), GROUP_N, self._generator())
        return z, reads

    @cached_property
    def class_gaussians(self) -> ClassGaussians:
        """A Gaussian fitted to the codes of each class."""
        codes, labels = self.labelled_codes
        return ClassGaussians.fit(codes, labels, self.classifier().config.num_classes)

    def _property_codes(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in PROPERTIES:
            raise GenforgeError(f"unknown attribute {name!r}; give a class number or one of: "
                                f"{', '.join(PROPERTIES)}")
        if self.model.is_autoencoder and not self.model.is_conditional:
            idx = torch.randperm(len(self.train), generator=self._generator())[:GROUP_N]
            images = self.train.images[idx].float() / 255
            return encode(self.model, images), scalar_measure(name, images, self.background)
        codes, images, _ = self._group(GROUP_N)  # a conditional model's codes under their own labels
        return codes, scalar_measure(name, images, self.background)

    def _needs_labels(self, labels: torch.Tensor | None) -> None:
        if self.model.is_conditional and labels is None:
            raise GenforgeError(f"model {self.model.name!r} is conditional; give the images' labels")
