"""Detection: tell real images from generated and edited ones, and show where an image was edited."""

from .detector import Detector, DetectorConfig, load_detector, save_detector
from .fakes import FakeSet, make_fakes
from .train import DetectTrainConfig, train_detector

__all__ = ["Detector", "DetectorConfig", "load_detector", "save_detector", "FakeSet", "make_fakes",
           "DetectTrainConfig", "train_detector"]
