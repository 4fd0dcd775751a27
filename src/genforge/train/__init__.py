from .checkpoint import load_checkpoint, save_checkpoint
from .loop import TrainConfig, train
from .run_dir import RunDir

__all__ = ["TrainConfig", "train", "RunDir", "save_checkpoint", "load_checkpoint"]
