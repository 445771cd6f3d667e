"""Building the training MindRecord (validated, sharded, all-or-nothing) and checking a shard set before use.

Schema (the published recipe's): ``file_name`` string, ``data`` bytes (the encoded JPEG as it is on disk),
``label`` bytes (the encoded single-channel index PNG). ``FileWriter(shard_num=N)`` writes ``N`` data files,
each with a ``.db`` index; opening any one shard opens them all.

Why the care:

* Every pair is validated *before* anything is written (decodes fully, label single-channel, sizes match,
  values in ``[0, C)`` or the ignore label), and all bad pairs are reported at once with list file and line, so
  a week-long training run never meets a broken sample at step 90,000.
* The shards are written into a temporary directory next to the output and moved into place only when
  complete. The manifest (``<out>.json``: file sizes, sample count) is written first, marked ``"complete":
  false`` -- from that moment any previous set under the name is refused -- then the old files are removed, the
  data files and ``.db`` indexes moved in, and the manifest rewritten with ``"complete": true``. A build killed at
  any moment therefore leaves the previous set untouched, or a set whose manifest says it is incomplete, which
  :func:`check_shard_set` (called by the training pipeline) refuses; never a complete-looking set it did not
  finish.
* Shards get the mode ``open()`` would give (the umask's), not MindSpore's owner-only ``0600``, so a team can
  share them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from ..fileio import file_mode, pid_alive, write_json_atomic
from ..runtime import get_logger
from .io import DataError, PathLike, decode_image, decode_label_bytes, read_bytes
from .lists import ListEntry, read_list
from ..progress import track

SCHEMA = {"file_name": {"type": "string"}, "data": {"type": "bytes"}, "label": {"type": "bytes"}}
SCHEMA_DESC = "deeplabv3 segmentation pairs"
MANIFEST_VERSION = 1
WRITE_CHUNK = 64
REBUILD_HINT = "rebuild it with tools/build_mindrecord.py --overwrite"


@dataclass
class BuildSummary:
    """What a build wrote: the shard to put in ``data.train.mindrecord``, counts and the pairs left out."""
    first_shard: str
    files: List[str]
    num_samples: int
    skipped: List[str] = field(default_factory=list)


def shard_paths(out: PathLike, num_shards: int) -> List[Path]:
    """The data files ``FileWriter`` produces for ``out`` (``out0 .. out{N-1}``, zero-padded past 10 shards)."""
    width = len(str(num_shards - 1))
    return [Path(f"{out}{str(i).rjust(width, '0')}") for i in range(num_shards)]


def manifest_path(out: PathLike) -> Path:
    return Path(f"{out}.json")


def _existing_outputs(out: Path) -> List[Path]:
    """Files of a previous build of ``out``: the manifest and any ``out<digits>[.db]``."""
    pattern = re.compile(re.escape(out.name) + r"\d+(\.db)?$")
    found = [p for p in out.parent.glob(out.name + "*") if pattern.fullmatch(p.name)]
    if manifest_path(out).exists():
        found.insert(0, manifest_path(out))
    return found


def _remove_stale_temp_dirs(out: Path) -> None:
    """Remove temporary directories of builds of ``out`` whose process no longer exists."""
    for tmp in out.parent.glob(f".{out.name}.building-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            get_logger().info("removing the leftovers of an interrupted build: %s", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ validation


def validate_pair(entry: ListEntry, num_classes: Optional[int], ignore_label: int = 255) -> None:
    """Raise :class:`DataError` unless the pair decodes exactly as the training pipeline will need it."""
    image = decode_image(read_bytes(entry.image), entry.image)
    label = decode_label_bytes(read_bytes(entry.label), entry.label, num_classes, ignore_label)
    if image.shape[:2] != label.shape:
        raise DataError(f"{entry.label}: label is {label.shape[1]}x{label.shape[0]} (WxH) but its image "
                        f"{entry.image} is {image.shape[1]}x{image.shape[0]}")


def validate_entries(entries: Sequence[ListEntry], list_path: PathLike, num_classes: Optional[int],
                     ignore_label: int = 255, workers: int = 4) -> Dict[int, str]:
    """Validate every pair (in parallel threads: decoding releases the GIL); ``{line: message}`` of bad ones."""
    def check(entry: ListEntry) -> Optional[str]:
        try:
            validate_pair(entry, num_classes, ignore_label)
        except DataError as exc:
            return f"{list_path}:{entry.line}: {exc}"
        return None

    bad: Dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(check, entries)
        for entry, message in zip(entries, track(results, len(entries), "validating pairs", "pair")):
            if message is not None:
                bad[entry.line] = message
    return bad


# --------------------------------------------------------------------------------------------------- writing


def _rows(entries: Sequence[ListEntry]) -> Iterator[dict]:
    for entry in entries:
        yield {"file_name": os.path.basename(entry.image), "data": read_bytes(entry.image),
               "label": read_bytes(entry.label)}


def _write_shards(entries: Sequence[ListEntry], tmp_out: Path, num_shards: int) -> List[Path]:
    """Write ``entries`` with ``FileWriter`` under ``tmp_out``; returns the data files written."""
    from mindspore.mindrecord import FileWriter

    paths = shard_paths(tmp_out, num_shards)
    # With one shard FileWriter uses the name as given; name it like shard 0 of a set, so names never vary.
    writer = FileWriter(str(paths[0]) if num_shards == 1 else str(tmp_out), shard_num=num_shards)
    writer.add_schema(SCHEMA, SCHEMA_DESC)
    chunk: List[dict] = []
    for row in track(_rows(entries), len(entries), "writing MindRecord", "img"):
        chunk.append(row)
        if len(chunk) == WRITE_CHUNK:
            writer.write_raw_data(chunk)
            chunk = []
    if chunk:
        writer.write_raw_data(chunk)
    writer.commit()
    for path in paths:
        for file in (path, Path(f"{path}.db")):
            os.chmod(file, file_mode())
    return paths


def _move_into_place(tmp_paths: Sequence[Path], out: Path, num_samples: int, list_path: PathLike,
                     num_classes: Optional[int]) -> List[Path]:
    """Replace any previous set by the new one under an incomplete manifest, then mark it complete."""
    final = [out.parent / p.name for p in tmp_paths]
    files = {p.name: p.stat().st_size for p in tmp_paths}
    files.update({f"{p.name}.db": Path(f"{p}.db").stat().st_size for p in tmp_paths})
    manifest = {"version": MANIFEST_VERSION, "num_samples": num_samples, "num_shards": len(final), "files": files,
                "list": str(Path(list_path).resolve()), "num_classes": num_classes}
    write_json_atomic(manifest_path(out), {**manifest, "complete": False})  # the old set is refused from here on
    for old in _existing_outputs(out):
        if old != manifest_path(out):
            old.unlink()
    for src, dst in zip(tmp_paths, final):
        os.replace(src, dst)
        os.replace(f"{src}.db", f"{dst}.db")
    write_json_atomic(manifest_path(out), {**manifest, "complete": True})
    return final


def build_mindrecord(list_path: PathLike, out: PathLike, num_shards: int = 1, data_root: Optional[PathLike] = None,
                     shuffle: bool = False, seed: int = 0, num_classes: Optional[int] = None,
                     ignore_label: int = 255, skip_bad: bool = False, overwrite: bool = False,
                     workers: Optional[int] = None) -> BuildSummary:
    """Validate the pairs of ``list_path`` and write them as ``num_shards`` MindRecord files named ``out<i>``.

    Bad pairs stop the build with all of them listed, unless ``skip_bad`` (then they are left out and
    reported). ``shuffle`` permutes the order with ``seed`` before writing (shards then mix the whole list).
    An existing set is replaced only with ``overwrite``, and only after the new one is complete.
    """
    logger = get_logger()
    out = Path(out).resolve()
    if not 1 <= num_shards <= 1000:
        raise DataError(f"num_shards is {num_shards}; use 1 to 1000 shards")
    if out.is_dir():
        raise DataError(f"--out {out} is a directory; give a file name prefix such as {out / 'train.mindrecord'}")
    existing = _existing_outputs(out)
    if existing and not overwrite:
        raise DataError(f"{existing[0]} already exists ({len(existing)} file(s) of a previous build); pass "
                        f"--overwrite to replace them or choose another --out")
    entries = read_list(list_path, data_root)
    bad = validate_entries(entries, list_path, num_classes, ignore_label, workers or min(8, os.cpu_count() or 1))
    if bad and not skip_bad:
        shown = "\n".join(list(bad.values())[:50]) + (f"\n... and {len(bad) - 50} more" if len(bad) > 50 else "")
        raise DataError(f"{len(bad)} of {len(entries)} pairs in {list_path} are unusable; fix them, or pass "
                        f"--skip-bad to build without them:\n{shown}")
    good = [e for e in entries if e.line not in bad]
    if not good:
        raise DataError(f"{list_path}: no usable pairs left to write")
    if num_shards > len(good):
        raise DataError(f"num_shards ({num_shards}) exceeds the number of pairs ({len(good)}); use fewer shards")
    if shuffle:
        good = [good[i] for i in np.random.default_rng(seed).permutation(len(good))]

    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(out)
    tmp_dir = out.parent / f".{out.name}.building-{os.getpid()}"
    tmp_dir.mkdir()
    try:
        tmp_paths = _write_shards(good, tmp_dir / out.name, num_shards)
        final = _move_into_place(tmp_paths, out, len(good), list_path, num_classes)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    for message in bad.values():
        logger.warning("skipped %s", message)
    logger.info("wrote %d samples in %d shard(s): %s .. %s%s", len(good), num_shards, final[0].name, final[-1].name,
                f" ({len(bad)} bad pairs skipped)" if bad else "")
    return BuildSummary(str(final[0]), [str(p) for p in final], len(good), list(bad.values()))


# --------------------------------------------------------------------------------------------------- reading


def _manifest_for(first_shard: Path) -> Optional[Path]:
    """The manifest of the set ``first_shard`` belongs to (``out.json`` for ``out0`` / ``out00``), if any."""
    match = re.fullmatch(r"(.*?)(0+)", first_shard.name)
    if match is None:
        return None
    candidate = manifest_path(first_shard.with_name(match.group(1)))
    return candidate if candidate.is_file() else None


def recorded_num_classes(path: PathLike) -> Optional[int]:
    """The class count the set of ``path`` was validated against at build time (``--num-classes``), if any."""
    manifest = _manifest_for(Path(path))
    if manifest is None:
        return None
    try:
        value = json.loads(manifest.read_text(encoding="utf-8")).get("num_classes")
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"{manifest}: unreadable MindRecord manifest ({exc}); {REBUILD_HINT}") from None
    return int(value) if value is not None else None


def check_shard_set(path: PathLike) -> int:
    """Check that the shard set of ``path`` is complete before a run relies on it; returns the sample count.

    A set with a manifest must have every listed file at its recorded size. A set without one (written by
    another tool) must open with MindSpore's own reader, which needs every shard and ``.db`` index.
    """
    path = Path(path)
    manifest = _manifest_for(path)
    if manifest is None and not path.exists():
        hint = f"; did you mean {path}0?" if Path(f"{path}0").exists() else ""
        raise DataError(f"MindRecord not found: {path}{hint} (data.train.mindrecord must name the first shard, "
                        f"e.g. data/vocaug.mindrecord0, written by tools/build_mindrecord.py)")
    if manifest is not None:
        try:
            info = json.loads(manifest.read_text(encoding="utf-8"))
            expected = {str(k): int(v) for k, v in info["files"].items()}
            num_samples = int(info["num_samples"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{manifest}: unreadable MindRecord manifest ({exc}); {REBUILD_HINT}") from None
        if not info.get("complete", True):  # manifests written before the flag existed were written last
            raise DataError(f"MindRecord shard set {path} is incomplete: the build writing it was interrupted "
                            f"({manifest} says so); {REBUILD_HINT}")
        problems = []
        for name, size in expected.items():
            file = manifest.parent / name
            if not file.is_file():
                problems.append(f"{name} is missing")
            elif file.stat().st_size != size:
                problems.append(f"{name} has {file.stat().st_size} bytes, expected {size}")
        if problems:
            raise DataError(f"MindRecord shard set {path} is incomplete: {'; '.join(problems[:10])}; {REBUILD_HINT}")
        return num_samples
    return _check_with_reader(path)


def _check_with_reader(path: Path) -> int:
    from mindspore.mindrecord import FileReader

    try:
        reader = FileReader(str(path))
    except (RuntimeError, OSError, ValueError) as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith("[ERROR]")), str(exc))
        raise DataError(f"MindRecord shard set {path} cannot be opened ({detail}); {REBUILD_HINT}") from None
    try:
        return int(reader.len())
    finally:
        reader.close()
