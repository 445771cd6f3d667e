"""The networks (a dilated MindCV backbone, ASPP, DeepLabV3 / DeepLabV3+), their builder and checkpoint handling."""
from .checkpoint import (CheckpointError, LoadReport, load_checkpoint, load_params, read_checkpoint,
                         save_checkpoint_atomic, save_weights)
from .deeplab import DeepLabV3, DeepLabV3Plus, InferenceNet, output_stride_of
from .factory import build_model

__all__ = [
    "CheckpointError", "DeepLabV3", "DeepLabV3Plus", "InferenceNet", "LoadReport", "build_model",
    "load_checkpoint", "load_params", "output_stride_of", "read_checkpoint", "save_checkpoint_atomic", "save_weights",
]
