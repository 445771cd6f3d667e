"""The schema: every key the project understands, declared once with its type, default and meaning.

Each key is a dataclass field with a one-line help string (``field(..., metadata={"help": ...})``) and, where the
value is one of a few, its ``choices``. The README's config reference is generated from these declarations, so
documentation and behaviour cannot drift apart. What a valid combination of values is lives in
:mod:`deeplabv3.config.rules`; how files and overrides become a :class:`Config` in :mod:`deeplabv3.config.loading`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import UserError

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


class ConfigError(UserError, ValueError):
    """A config file or override is invalid; the message says where and how to fix it."""


def _help(text: str, **kwargs: Any) -> Any:
    """A dataclass field carrying its documentation."""
    return field(metadata={"help": text}, **kwargs)


def _choices(text: str, choices: Sequence[Any], default: Any) -> Any:
    """A field whose value must be one of ``choices``."""
    return field(default=default, metadata={"help": text, "choices": tuple(choices)})


@dataclass(frozen=True)
class ModelConfig:
    name: str = _choices("Network: DeepLabV3 or DeepLabV3+ (adds the layer1 decoder).",
                         ["deeplabv3", "deeplabv3plus"], "deeplabv3")
    backbone: str = _help("MindCV model used as the backbone, dilated to the output stride: resnet18..152, "
                          "resnext*, repvgg_*, mobilenet_v2_*, mobilenet_v3_*, efficientnet_b0..b7, convnext_* "
                          "(tools/inspect_model.py --list-backbones lists them).", default="resnet101")
    layers: Optional[List[int]] = _help("ResNet/ResNeXt backbones: blocks per stage, overriding the backbone's "
                                        "([3, 4, 23, 3] for resnet101); small values make quick demo/test "
                                        "networks.", default=None)
    base_channels: int = _help("ResNet/ResNeXt backbones: width of the stem and of layer1 (64 in ResNet); stages "
                               "double it.", default=64)
    num_classes: int = _help("Number of classes, background included.", default=21)
    output_stride: int = _choices("Ratio of input to feature-map size while training.", [8, 16], 16)
    aspp_rates: List[int] = _help("ASPP rates; the first (1) is the 1x1 branch. Published weights use "
                                  "[1, 6, 12, 18] at OS16 and OS8 alike.", default_factory=lambda: [1, 6, 12, 18])
    multi_grid: List[int] = _help("ResNet/ResNeXt backbones: per-block dilation multipliers of layer4.",
                                  default_factory=lambda: [1, 2, 4])
    aspp_channels: int = _help("Channels of each ASPP branch and of the projection.", default=256)
    low_level_channels: int = _help("DeepLabV3+: channels of the projected layer1 features.", default=48)
    dropout: float = _help("Drop probability before the classifier (the published recipe: 0.7).", default=0.7)
    bn_momentum: float = _help("BatchNorm momentum, MindSpore convention (torch's 0.1 is 0.9 here), of the heads and "
                               "of ResNet/ResNeXt backbones (other backbones keep MindCV's 0.9).", default=0.9)
    bn_eps: float = _help("BatchNorm epsilon (heads, ResNet/ResNeXt backbones; others keep MindCV's 1e-5).",
                          default=1e-5)
    pretrained_backbone: Optional[str] = _help("ImageNet checkpoint of the backbone's MindCV classification model "
                                               "(names such as conv1.weight, features.3.conv.0.weight), loaded "
                                               "strictly at the start of training.", default=None)
    init_checkpoint: Optional[str] = _help("Full DeepLab checkpoint to start training from (e.g. stage 2 from "
                                           "stage 1).", default=None)
    ignore_head_mismatch: bool = _help("Skip classifier tensors whose shape differs (another num_classes), with a "
                                       "warning, instead of failing.", default=False)


@dataclass(frozen=True)
class TrainDataConfig:
    mindrecord: Optional[str] = _help("First shard of the training MindRecord (e.g. data/vocaug.mindrecord0).",
                                      default=None)
    batch_size: int = _help("Images per device and step.", default=32)
    crop_size: Union[int, List[int]] = _help("Random-crop size: one number (square) or [height, width].",
                                             default=513)
    min_scale: float = _help("Lower bound of the random rescale factor.", default=0.5)
    max_scale: float = _help("Upper bound of the random rescale factor.", default=2.0)
    base_size: Optional[List[int]] = _help("Random resize relative to a base scale [long, short] (mmseg's "
                                           "RandomResize(scale=(2048, 1024), ratio_range=(min_scale, max_scale)), "
                                           "keep ratio); null: the image itself is scaled (VOC's rule).",
                                           default=None)
    flip_prob: float = _help("Probability of a horizontal flip.", default=0.5)
    num_workers: int = _help("Parallel workers of the augmentation map.", default=4)
    shuffle: bool = _help("Shuffle the training set every epoch.", default=True)


@dataclass(frozen=True)
class EvalDataConfig:
    list: Optional[str] = _help("List file of '<image> <label>' lines (e.g. voc_val.txt).", default=None)
    data_root: Optional[str] = _help("Directory the list's relative paths start from (default: the list's "
                                     "directory).", default=None)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _choices("Data set kind: tools/prepare_dataset.py's --kind when not given (voc, cityscapes, "
                            "ade20k or your own).",
                            ["voc", "cityscapes", "ade20k", "custom"], "voc")
    ignore_label: int = _help("Label value excluded from loss and metrics.", default=255)
    class_names: Optional[List[str]] = _help("Class names for tables and legends (default: the 21 VOC classes).",
                                             default=None)
    palette: Optional[List[List[int]]] = _help("[R, G, B] colour of each class: decodes RGB masks (mask_format rgb) "
                                               "and colours predictions, overlays and legends (default: VOC's).",
                                               default=None)
    mask_format: str = _choices("Custom data masks: index PNGs, RGB colours through data.palette, or binary 0/255 "
                                "(thresholded at 128 -> classes 0/1).", ["index", "rgb", "binary"], "index")
    label_map: Optional[Dict[int, int]] = _help("Custom data: mask value -> class index or ignore_label, e.g. "
                                                "{255: 1}; applied after reduce_zero_label.", default=None)
    reduce_zero_label: bool = _help("Custom data: mmseg's reduce_zero_label (0 -> ignore, v -> v - 1).",
                                    default=False)
    mean: List[float] = _help("Per-channel mean, BGR order, 0-255 scale.",
                              default_factory=lambda: [103.53, 116.28, 123.675])
    std: List[float] = _help("Per-channel std, BGR order, 0-255 scale.",
                             default_factory=lambda: [57.375, 57.120, 58.395])
    train: TrainDataConfig = field(default_factory=TrainDataConfig)
    eval: EvalDataConfig = field(default_factory=EvalDataConfig)


@dataclass(frozen=True)
class LossConfig:
    name: str = _choices("Training loss: softmax cross-entropy over the valid pixels (the published recipe's), or "
                         "OHEM cross-entropy (mmseg's OHEMPixelSampler).", ["cross_entropy", "ohem"],
                         "cross_entropy")
    class_weights: Optional[Union[List[float], str]] = _help(
        "Per-class loss weights: a list (one per class), inverse_frequency or median_frequency (derived from the "
        "training MindRecord's labels at the start), or null for none.", default=None)
    ohem_thresh: float = _help("OHEM: keep pixels whose true-class probability is below this.", default=0.7)
    ohem_min_kept: int = _help("OHEM: keep at least this many pixels per image (the hardest).", default=100000)
    aux_weight: float = _help("Weight of an auxiliary FCN head's loss on the penultimate backbone stage, training "
                              "only (mmseg: 0.4); 0 = no auxiliary head.", default=0.0)


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = _choices("Optimizer.", ["momentum"], "momentum")
    momentum: float = _help("Momentum.", default=0.9)
    nesterov: bool = _help("Nesterov momentum.", default=False)
    weight_decay: float = _help("L2 weight decay.", default=1e-4)
    weight_decay_filter: str = _choices("Which parameters decay: 'weights' = conv/dense weights only (BN gamma/beta "
                                        "and biases not), 'all' = every parameter.", ["weights", "all"], "weights")
    backbone_lr_mult: float = _help("LR multiplier of backbone.* parameters.", default=1.0)
    bias_lr_mult: float = _help("LR multiplier of biases (the TensorFlow recipe's bias_multiplier).", default=1.0)


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = _choices("LR schedule after warmup. 'reference' reproduces the published MindCV recipe.",
                         ["reference", "cosine", "poly", "step", "exp", "constant"], "cosine")
    base_lr: float = _help("Peak learning rate (reached at the end of warmup).", default=0.08)
    min_lr: float = _help("Final learning rate of cosine / poly.", default=0.0)
    warmup_epochs: float = _help("Length of the linear warmup in epochs.", default=3.0)
    warmup_start_factor: float = _help("Warmup starts at base_lr * this factor.", default=0.0)
    power: float = _help("Exponent of the poly schedule.", default=0.9)
    milestones: List[float] = _help("Epochs at which the step schedule multiplies the LR by gamma.",
                                    default_factory=list)
    gamma: float = _help("Decay factor of step (per milestone) and exp (per epoch) schedules.", default=0.1)
    cosine_period_epochs: float = _help("Period of the reference schedule's cosine, in epochs.", default=40000.0)


@dataclass(frozen=True)
class LossScaleConfig:
    type: str = _choices("Loss scaling: none, a fixed scale, or a dynamic scale that halves on overflow.",
                         ["none", "fixed", "dynamic"], "none")
    scale: float = _help("Fixed scale, or the initial dynamic scale.", default=1024.0)
    factor: float = _help("Dynamic scale: divide on overflow, multiply after 'window' clean steps.", default=2.0)
    window: int = _help("Dynamic scale: clean steps before the scale grows.", default=1000)
    max_consecutive_nonfinite: int = _help("Abort after this many consecutive non-finite steps (0 = never).",
                                           default=50)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _help("Training epochs.", default=300)
    max_steps: Optional[int] = _help("Stop after this many steps (overrides epochs for the run length).",
                                     default=None)
    log_interval: int = _help("Log every N steps.", default=20)
    save_steps: int = _help("Save a checkpoint every N steps (0 = only at the end).", default=1000)
    keep_checkpoint_max: int = _help("Number of periodic checkpoints kept.", default=5)
    eval_interval: int = _help("Evaluate every N steps (0 = never while training).", default=0)
    eval_start: int = _help("First step at which periodic evaluation may run.", default=0)
    amp_level: str = _choices("Mixed precision. auto: O2 on Ascend and GPU (the published recipe), O0 on CPU "
                              "(float16 is slower there), resolved from runtime.device_target when the config is "
                              "loaded, so the saved config.yaml shows the level that ran; an explicit level wins. "
                              "O2/O3 with loss_scale.type none is warned about at the start of training.",
                              ["auto", "O0", "O1", "O2", "O3"], "auto")
    freeze_bn: bool = _help("Keep BatchNorm statistics and affine parameters fixed.", default=False)
    grad_accum_steps: int = _help("Accumulate gradients over N micro-batches per update.", default=1)
    deterministic_data: bool = _help("Per-sample augmentation seeded from (seed, epoch, index): bit-identical "
                                     "batches across runs and exact resume.", default=False)


@dataclass(frozen=True)
class EvalConfig:
    scales: List[float] = _help("Inference scales; [0.5, 0.75, 1.0, 1.25, 1.75] is the published multi-scale.",
                                default_factory=lambda: [1.0])
    flip: bool = _help("Add the prediction of the mirrored image.", default=False)
    crop_size: int = _help("Base size: at scale s the long side becomes int((crop_size - 1) * s) + 1.",
                           default=513)
    batch_size: int = _help("Images per forward pass (images of one padded size are batched).", default=1)
    output_stride: Optional[int] = _choices("Output stride at inference (default: model.output_stride).",
                                            [None, 8, 16], None)
    slide: bool = _help("Sliding-window inference for network inputs larger than slide_max_size.", default=False)
    slide_max_size: int = _help("With slide: a scale whose input long side (int((crop_size - 1) * s) + 1) exceeds "
                                "this runs as overlapping tiles instead of one padded square.", default=1024)
    tile_size: int = _help("Sliding-window tile size.", default=513)
    tile_stride: int = _help("Sliding-window stride.", default=342)
    num_workers: int = _help("Parallel image-reading workers.", default=2)


@dataclass(frozen=True)
class RuntimeConfig:
    device_target: str = _choices("Device.", ["CPU", "GPU", "Ascend"], "CPU")
    device_id: Optional[int] = _help("Device index (default: DEVICE_ID, else the local rank).", default=None)
    mode: str = _choices("Graph compiles the network (faster); pynative runs eagerly (debugging).",
                         ["graph", "pynative"], "graph")
    seed: int = _help("Seed of MindSpore, NumPy, Python and the data pipeline (the same on every rank).",
                      default=1)
    work_dir: str = _help("Output directory: config.yaml, logs, checkpoints, results.", default="work_dirs/default")
    log_level: str = _choices("Log level of the project's logger.", ["DEBUG", "INFO", "WARNING", "ERROR"], "INFO")
    ms_log_level: int = _choices("MindSpore's own GLOG_v (0 debug .. 3 error); quiet by default.", [0, 1, 2, 3], 3)
    compile_cache: bool = _help("Cache compiled graphs in <work_dir>/compile_cache between runs.", default=False)


@dataclass(frozen=True)
class DistributedConfig:
    backend: str = _choices("Gradient/metric reduction: auto (mpi4py under mpirun on CPU, MindSpore "
                            "collectives elsewhere), mindspore, or mpi4py.", ["auto", "mindspore", "mpi4py"], "auto")
    timeout: int = _help("Seconds a collective or cluster start may wait before the job is ended.", default=120)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss_scale: LossScaleConfig = field(default_factory=LossScaleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    @property
    def class_names(self) -> Tuple[str, ...]:
        """Class names from the config, or VOC's when none are given and there are 21 classes."""
        if self.data.class_names is not None:
            return tuple(self.data.class_names)
        if self.model.num_classes == len(VOC_CLASSES):
            return VOC_CLASSES
        return tuple(f"class_{i}" for i in range(self.model.num_classes))


def effective_output_stride(cfg: Config) -> int:
    """The output stride the network runs at in evaluation, export and prediction."""
    return cfg.eval.output_stride or cfg.model.output_stride


def crop_hw(crop_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``data.train.crop_size`` as ``(height, width)``: one number is a square."""
    if isinstance(crop_size, int):
        return crop_size, crop_size
    height, width = crop_size
    return int(height), int(width)


def input_size(crop_size: int, scale: float) -> int:
    """Long side (and padded square size) of the evaluation network input at ``scale`` (``eval.crop_size``)."""
    return int((crop_size - 1) * scale) + 1
