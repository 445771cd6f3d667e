"""The training data stream: MindRecord shards -> augmentation -> batches, per rank.

Sharding: ``MindDataset(num_shards=group_size, shard_id=rank)`` with the dataset seed set to ``runtime.seed`` on
every rank, so all ranks shuffle identically and each reads its own part. When the sample count is not a multiple
of ``group_size``, MindSpore repeats a few samples so that every rank has ``ceil(n / group_size)`` samples and
all ranks run the same number of steps (a rank with one step fewer would hang the others in a collective).

Augmentation runs in the ``batch`` operation's ``per_batch_map``, which is told the epoch. With
``train.deterministic_data`` every sample draws from its own generator seeded with ``(runtime.seed, epoch,
crc32(file_name))``, independent of worker count, scheduling and where the sample lands in the stream, so a fixed
seed gives bit-identical batches run after run and a resumed run the same augmentation. (Keying by name rather
than by position also survives ``set_init_step``, after which MindSpore numbers the batches of the resumed epoch
from 0 again. Two records with the same ``file_name`` share their random draws within an epoch.) Without
``deterministic_data`` each sample draws fresh entropy.

Resuming: MindSpore's shuffle order of epoch ``e`` depends only on the dataset seed and ``e``, and
``Dataset.set_init_step`` starts a pipeline at a global batch without decoding the skipped ones.
``build_train_dataset(cfg, ..., epoch_offset=E, skip_batches=K)`` therefore yields exactly the batches an
uninterrupted run yields from batch ``K`` of epoch ``E`` on (in deterministic mode, augmentation included). The
iterator still counts epochs from 0: create it with ``num_epochs`` = the run's total epochs (a finite count;
MindSpore refuses -1 for a resumed pipeline) and read ``total - E`` epochs from it, the first of which is
shortened by ``K`` batches.
"""
from __future__ import annotations

import math
import zlib
from typing import List, Tuple

import numpy as np

from ..config import Config, key_error
from ..runtime import get_logger
from .io import DataError
from .mindrecord import check_shard_set, recorded_num_classes
from .transforms import TrainTransformParams, train_transform_bytes


class BatchAugment:
    """``per_batch_map`` of the training batch: encoded rows -> augmented images and labels."""

    def __init__(self, params: TrainTransformParams, seed: int, deterministic: bool) -> None:
        self.params = params
        self.seed = seed % 2**63
        self.deterministic = deterministic

    def rng(self, epoch: int, file_name: np.ndarray) -> np.random.Generator:
        """The generator of one sample: keyed by the epoch and the sample's name, or fresh entropy."""
        if self.deterministic:
            return np.random.default_rng([self.seed, epoch, zlib.crc32(file_name.tobytes())])
        return np.random.default_rng()

    def __call__(self, names: List[np.ndarray], data: List[np.ndarray], labels: List[np.ndarray],
                 info) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        epoch = info.get_epoch_num()
        images, targets = [], []
        for name, image_bytes, label_bytes in zip(names, data, labels):
            image, label = train_transform_bytes(image_bytes.tobytes(), label_bytes.tobytes(), self.params,
                                                 self.rng(epoch, name))
            images.append(image)
            targets.append(label)
        return images, targets


def _mindrecord_path(cfg: Config) -> str:
    path = cfg.data.train.mindrecord
    if not path:
        raise DataError("data.train.mindrecord is not set; build the training data with tools/build_mindrecord.py "
                        "and set it to the first shard, e.g. data.train.mindrecord=data/vocaug.mindrecord0")
    return path


def labels_checked(cfg: Config) -> bool:
    """Whether the training MindRecord's labels were validated for ``model.num_classes`` when it was built.

    A set built for another class count is refused here, before any work (fine-tuning with another
    ``model.num_classes`` needs labels made for it). A set built without ``--num-classes`` was not checked: the
    trainer then checks every batch with :func:`check_batch_labels`.
    """
    path, num_classes = _mindrecord_path(cfg), cfg.model.num_classes
    recorded = recorded_num_classes(path)
    if recorded is None:
        get_logger().warning("%s was built without --num-classes, so its label values were not checked; every batch "
                             "is checked against model.num_classes=%d instead (rebuild it with "
                             "tools/build_mindrecord.py --num-classes %d to check them once)", path, num_classes,
                             num_classes)
        return False
    if recorded != num_classes:
        raise key_error(cfg, "model.num_classes",
                        f"the training MindRecord {path} holds labels for {recorded} classes (recorded in its "
                        f"manifest when it was built), but model.num_classes is {num_classes}: its labels may hold "
                        f"values >= {num_classes}. Set model.num_classes={recorded}, or map the labels to "
                        f"{num_classes} classes (tools/prepare_dataset.py with data.label_map) and rebuild with "
                        f"tools/build_mindrecord.py --num-classes {num_classes}")
    return True


def check_batch_labels(labels: np.ndarray, num_classes: int, ignore_label: int, source: str) -> None:
    """Raise :class:`DataError` if a label is neither a class index nor the ignore label (before the loss, whose
    gather would fail with a kernel index error)."""
    bad = (labels >= num_classes) & (labels != ignore_label) | (labels < 0)
    if bad.any():
        values, counts = np.unique(labels[bad], return_counts=True)
        shown = ", ".join(f"{v} ({c} px)" for v, c in zip(values[:10].tolist(), counts[:10].tolist()))
        raise DataError(f"{source}: a training batch holds label value(s) {shown} outside [0, {num_classes - 1}] "
                        f"and not the ignore label {ignore_label}; rebuild the MindRecord with "
                        f"tools/build_mindrecord.py --num-classes {num_classes} to find the files, and map the "
                        f"values with data.label_map (tools/prepare_dataset.py) or fix model.num_classes")


def samples_per_rank(num_samples: int, group_size: int) -> int:
    """Samples each rank reads per epoch (MindSpore pads the shards to equal length)."""
    return math.ceil(num_samples / group_size)


def steps_per_epoch(cfg: Config, group_size: int = 1) -> int:
    """Batches per epoch on every rank (the last incomplete batch is dropped)."""
    num_samples = check_shard_set(_mindrecord_path(cfg))
    steps = samples_per_rank(num_samples, group_size) // cfg.data.train.batch_size
    if steps < 1:
        raise DataError(f"{cfg.data.train.mindrecord}: {num_samples} samples over {group_size} rank(s) do not fill "
                        f"one batch of data.train.batch_size={cfg.data.train.batch_size}; lower the batch size")
    return steps


def build_train_dataset(cfg: Config, rank: int = 0, group_size: int = 1, epoch_offset: int = 0,
                        skip_batches: int = 0):
    """Batched training ``MindDataset`` of this rank: columns ``image`` (float32 N x 3 x c x c) and ``label``
    (int32 N x c x c), ``steps_per_epoch`` batches per epoch.

    ``epoch_offset`` / ``skip_batches`` resume the stream at batch ``skip_batches`` of epoch ``epoch_offset``
    (see the module docstring for how to iterate it). Sets MindSpore's dataset seed to ``runtime.seed``.
    """
    import mindspore.dataset as ds

    if not 0 <= rank < group_size:
        raise ValueError(f"rank {rank} is not in [0, {group_size})")
    train = cfg.data.train
    steps = steps_per_epoch(cfg, group_size)
    if not 0 <= skip_batches < steps:
        raise ValueError(f"skip_batches is {skip_batches}; it must be in [0, {steps}) (batches per epoch)")
    ds.config.set_seed(cfg.runtime.seed)
    sharding = {"num_shards": group_size, "shard_id": rank} if group_size > 1 else {}
    dataset = ds.MindDataset(_mindrecord_path(cfg), columns_list=["file_name", "data", "label"], shuffle=train.shuffle,
                             num_parallel_workers=1, **sharding)
    augment = BatchAugment(TrainTransformParams.from_config(cfg), cfg.runtime.seed, cfg.train.deterministic_data)
    dataset = dataset.batch(train.batch_size, drop_remainder=True, per_batch_map=augment,
                            input_columns=["file_name", "data", "label"], output_columns=["image", "label"],
                            num_parallel_workers=max(1, train.num_workers), python_multiprocessing=False)
    start = epoch_offset * steps + skip_batches
    if start:
        dataset.set_init_step(start)
    return dataset
