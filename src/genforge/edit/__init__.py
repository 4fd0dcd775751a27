"""Editing real images through a model's latent space: inversion, interpolation, attribute
vectors, class swap, inpainting, unsupervised directions, and the realism check; for colour
images also measured properties (hue, saturation, brightness, area) changed by an asked amount
(`calibrated_edit`), and the feature network read at the run's size and labels (`Reader`).

Each operation is a plain function on tensors and the model interface (one module each);
`Editor` puts them together with the classifier and training data a run needs.
"""

from .attribute import PROPERTIES, class_means, ink_mass, property_vector, slant, toward_class
from .calibrate import PropertyEdit, PropertyModel, calibrated_edit
from .colour import area, brightness, hue, saturation
from .directions import pca_directions, sefa_directions, traverse
from .fit import Fit, FitConfig, fit_latents
from .inpaint import composite, inpaint, mean_fill, nearest_fill
from .inputs import as_float, read_images
from .interpolate import interpolate, lerp, slerp
from .invert import encode, generate, invert, reconstruction_quality
from .masks import box_mask, centre_mask, random_half_masks, read_mask
from .pipeline import Editor
from .reader import Reader
from .realism import realism
from .swap_class import swap_class

__all__ = ["Editor", "Fit", "FitConfig", "PROPERTIES", "PropertyEdit", "PropertyModel", "Reader", "area", "as_float",
           "box_mask", "brightness", "calibrated_edit", "centre_mask", "class_means", "composite", "encode",
           "fit_latents", "generate", "hue", "ink_mass", "inpaint", "interpolate", "invert", "lerp", "mean_fill",
           "nearest_fill", "pca_directions", "property_vector", "random_half_masks", "read_images", "read_mask",
           "realism", "reconstruction_quality", "saturation", "sefa_directions", "slant", "slerp", "swap_class",
           "toward_class", "traverse"]
