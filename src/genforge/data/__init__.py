"""Data sources: named data sets (MNIST, Fashion-MNIST, CIFAR-10/100, emoji, CelebA-64, SVHN) and image
folders, as ImageSets."""

from genforge.data.folder import load_folder
from genforge.data.idx import read_idx
from genforge.data.imageset import ImageSet
from genforge.data.registry import (DATASETS, DatasetSpec, cache_dir, dataset_info, fetch, load_split,
                                    locate)
from genforge.data.source import load_dataset, load_slice, parse_slice

__all__ = ["ImageSet", "DATASETS", "DatasetSpec", "load_dataset", "load_slice", "load_split", "locate", "fetch",
           "dataset_info", "load_folder", "read_idx", "cache_dir", "parse_slice"]
