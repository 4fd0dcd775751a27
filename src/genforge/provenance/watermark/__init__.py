"""A learned watermark in the pixels of genforge's small images, and keys in the models themselves.

    from genforge.provenance.watermark import train_watermark, embed, read_marks
    train_watermark("mnist", "marks/mnist", bits=32, minutes=30)
    marked = embed(images, "marks/mnist", key="0123abcd")      # (N, C, H, W) in [0, 1]
    read_marks(marked, "marks/mnist", key="0123abcd")           # [{"key", "matches", "bits_agree", ...}]
    read_files(["a.png", "b.jpg"], "marks/mnist")                # the same, of image files

One idea per module: bits (hex keys), jpeg (the real codec and a differentiable stand-in),
distortions (what a shared image meets), nets (embedder and extractor), store (the watermark
directory), train (training both networks), read (embedding, reading, the binomial p-value),
evaluate (bit accuracy, TPR at an FPR, PSNR), finetune (a key in a model's generator), files
(image files as the watermark reads them), marker (a watermark and its key, as sample, edit and
the server hold them).
"""

from .bits import bits_to_key, check_key, key_to_bits, random_key
from .read import DEFAULT_FPR, describe, embed, p_value, read_files, read_marks, read_pictures, threshold
from .store import Watermark, load_watermark
from .train import MarkTraining, train_watermark
from .nets import MarkConfig
from .marker import Marker

__all__ = ["read_marks", "read_files", "read_pictures", "describe", "Marker", "embed", "p_value", "threshold", "DEFAULT_FPR",
           "train_watermark", "MarkTraining", "MarkConfig", "Watermark", "load_watermark", "check_key", "key_to_bits", "bits_to_key", "random_key"]
