"""genforge: generate, edit, measure and detect images with VAEs and GANs, fast on a CPU."""

__version__ = "0.1.0"

from .api import Model, fit_prior, load, train  # noqa: E402
from .errors import GenforgeError  # noqa: E402

__all__ = ["Model", "fit_prior", "load", "train", "GenforgeError", "__version__"]
