"""Which label a run is trained and edited on: the class, the style, or both.

A data set with a second label per image (emoji: the category and the vendor that drew it,
`ImageSet.styles`) can condition a model on either, or on their pair:

- "class" (the default): the labels as the data set gives them (emoji: its 9 categories);
- "style": the style labels (emoji: google, twitter); a model conditioned on the vendor draws
  one emoji in each vendor's style, so swapping the label is style transfer between emoji sets;
- "class+style": one label per pair, `class * num_styles + style`, named "category/vendor".

The run keeps its choice in config.json (`data.labels`), and everything that reads its data
again (the prior fit, edits, evaluation) maps the labels the same way with `relabel`.
"""

from __future__ import annotations

import dataclasses

import torch

from genforge.config_check import OneOf, check_value
from genforge.data.imageset import ImageSet
from genforge.errors import DataError

LABELLINGS = ("class", "style", "class+style")
RULE = OneOf(*LABELLINGS)


def check_labelling(value) -> str:
    """`value` if it is one of LABELLINGS (a ConfigError line otherwise)."""
    return check_value("training data", "labels", RULE, value)


def relabel(data: ImageSet, labelling: str = "class") -> ImageSet:
    """`data` with its labels (and class names) as `labelling` asks; "class" returns it unchanged.
    Images without style labels (a PNG folder, say) keep labels None under "style" when they
    have no labels at all; a labelled set without styles cannot be relabelled (DataError)."""
    labelling = check_labelling(labelling)
    if labelling == "class":
        return data
    if data.styles is None or data.style_names is None:
        if data.labels is None:
            return data  # unlabelled images stay unlabelled: the classifier reads them
        raise DataError(f"--labels {labelling} needs images with style labels (emoji's vendors); "
                        f"{data.name or 'these images'} have none")
    styles, names = data.styles.long(), list(data.style_names)
    if labelling == "style":
        return dataclasses.replace(data, labels=styles, classes=names)
    classes = data.classes or [str(k) for k in range(data.num_classes)]
    pairs = [f"{c}/{s}" for c in classes for s in names]
    return dataclasses.replace(data, labels=data.labels.long() * len(names) + styles, classes=pairs)


def split_pair(label: torch.Tensor | int, num_styles: int) -> tuple:
    """(class, style) of a "class+style" label (tensors or ints)."""
    return label // num_styles, label % num_styles
