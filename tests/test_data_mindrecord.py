"""Building and checking the training MindRecord: round trip, shards, bad inputs, interruption."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mindspore.dataset as ds
import numpy as np
import pytest
from mindspore.mindrecord import FileReader

from conftest import REPO, run_tool
from data_helpers import random_pair, train_config, write_jpeg, write_list, write_png
from deeplabv3.data.io import DataError
from deeplabv3.data.mindrecord import build_mindrecord, check_shard_set
from deeplabv3.data.pipeline import build_train_dataset


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """24 valid pairs of varied sizes and their list file."""
    root = tmp_path_factory.mktemp("pairs")
    made = [random_pair(root, f"img{i:02d}", h=30 + i, w=50 - i, seed=i) for i in range(24)]
    return write_list(root / "train.txt", made), made


def read_all(first_shard):
    reader = FileReader(str(first_shard))
    try:
        return [row for _, row in zip(range(10**6), reader.get_next())]
    finally:
        reader.close()


def names_of_shard(first_shard, num_shards, shard_id, epochs=1):
    dataset = ds.MindDataset(str(first_shard), columns_list=["file_name"], shuffle=True, num_shards=num_shards,
                             shard_id=shard_id)
    iterator = dataset.create_tuple_iterator(num_epochs=epochs, output_numpy=True)
    return [[str(row[0]) for row in iterator] for _ in range(epochs)]


def test_cli_round_trip_keeps_the_bytes(pairs, tmp_path):
    listing, made = pairs
    result = run_tool("build_mindrecord", ["--list", listing, "--out", tmp_path / "train.mindrecord",
                                           "--num-shards", 3, "--shuffle", "--seed", 3, "--num-classes", 3])
    assert result.returncode == 0, result.stderr
    assert f"data.train.mindrecord={tmp_path / 'train.mindrecord0'}" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["train.mindrecord.json"] + [f"train.mindrecord{i}{ext}" for i in range(3) for ext in ("", ".db")])
    rows = read_all(tmp_path / "train.mindrecord1")  # any shard opens the whole set
    by_name = {row["file_name"]: row for row in rows}
    assert len(rows) == len(by_name) == len(made) == check_shard_set(tmp_path / "train.mindrecord0")
    for image, label in made:
        assert by_name[image.name]["data"] == image.read_bytes()
        assert by_name[image.name]["label"] == label.read_bytes()
    assert [row["file_name"] for row in rows] != [image.name for image, _ in made]  # --shuffle


@pytest.mark.parametrize("num_shards", [2, 3])
def test_sharded_reading_is_disjoint_and_complete(pairs, tmp_path, num_shards):
    listing, made = pairs
    shard = build_mindrecord(listing, tmp_path / "s.mindrecord", num_shards=2, shuffle=True).first_shard
    ds.config.set_seed(11)
    per_rank = [names_of_shard(shard, num_shards, rank, epochs=2) for rank in range(num_shards)]
    for epoch in range(2):
        parts = [ranks[epoch] for ranks in per_rank]
        assert sorted(n for part in parts for n in part) == sorted(image.name for image, _ in made)
    assert per_rank[0][0] != per_rank[0][1]  # reshuffled every epoch, still disjoint


def test_uneven_shards_are_padded_to_equal_length(pairs, tmp_path):
    listing, made = pairs
    shard = build_mindrecord(listing, tmp_path / "u.mindrecord").first_shard
    ds.config.set_seed(2)
    parts = [names_of_shard(shard, 5, rank)[0] for rank in range(5)]
    assert {len(p) for p in parts} == {5}  # ceil(24 / 5): every rank runs the same number of steps
    flat = [n for p in parts for n in p]
    assert set(flat) == {image.name for image, _ in made} and len(flat) - len(set(flat)) == 1


def test_every_bad_pair_is_reported_with_its_line(pairs, tmp_path):
    _, made = pairs
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (30, 50)).astype(np.uint8)
    bad = {
        "palette": (made[0][0], write_png(tmp_path / "palette.png", label, "P", palette=True)),
        "rgb": (made[1][0], write_png(tmp_path / "rgb.png", np.stack([label * 60] * 3, -1), "RGB")),
        "corrupt": (tmp_path / "corrupt.jpg", made[2][1]),
        "truncated": (tmp_path / "truncated.jpg", made[3][1]),
        "missing": (tmp_path / "missing.jpg", made[4][1]),
        "value": random_pair(tmp_path, "value", classes=(0, 1, 7)),
        "size": (made[5][0], made[6][1]),
    }
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8garbage")
    whole = write_jpeg(tmp_path / "whole.jpg", rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)).read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    listing = write_list(tmp_path / "mixed.txt", [made[7]] + list(bad.values()) + [made[8]])
    with pytest.raises(DataError) as info:
        build_mindrecord(listing, tmp_path / "bad.mindrecord", num_classes=3)
    message = str(info.value)
    assert "7 of 9 pairs in" in message and "--skip-bad" in message
    expected = {
        2: "palette.png: label is a palette PNG", 3: "rgb.png: label is RGB", 4: "corrupt.jpg: cannot decode the image",
        5: "truncated.jpg: cannot decode the image", 6: "missing.jpg: file not found",
        7: "value.png: label values 7 are outside [0, 2]",
        8: f"{made[6][1].name}: label is 44x36 (WxH) but its image {made[5][0]} is 45x35",
    }
    for line, text in expected.items():
        assert f"mixed.txt:{line}: " in message and text in message, (line, text, message)
    assert not list(tmp_path.glob("bad.mindrecord*"))

    skipped = run_tool("build_mindrecord", ["--list", listing, "--out", tmp_path / "bad.mindrecord",
                                            "--num-classes", 3, "--skip-bad"])
    assert skipped.returncode == 0, skipped.stderr
    assert "(2 samples, 7 bad pairs skipped)" in skipped.stdout and "skipped " in skipped.stderr
    assert [r["file_name"] for r in read_all(tmp_path / "bad.mindrecord0")] == [made[7][0].name, made[8][0].name]

    listing.write_text(f"{made[0][0]} {made[0][1]}\n{made[1][0]}\n")
    wrong = run_tool("build_mindrecord", ["--list", listing, "--out", tmp_path / "w.mindrecord"])
    assert wrong.returncode == 2 and "line 2:" in wrong.stderr and "Traceback" not in wrong.stderr


def test_existing_output_needs_overwrite(pairs, tmp_path):
    listing, made = pairs
    build_mindrecord(listing, tmp_path / "o.mindrecord", num_shards=3)
    with pytest.raises(DataError, match="already exists.*--overwrite"):
        build_mindrecord(listing, tmp_path / "o.mindrecord", num_shards=2)
    summary = build_mindrecord(listing, tmp_path / "o.mindrecord", num_shards=2, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["o.mindrecord.json"] + [f"o.mindrecord{i}{ext}" for i in range(2) for ext in ("", ".db")])
    assert summary.num_samples == len(read_all(summary.first_shard)) == len(made)


def test_incomplete_shard_sets_are_refused(pairs, tmp_path):
    listing, _ = pairs
    first = Path(build_mindrecord(listing, tmp_path / "c.mindrecord", num_shards=3).first_shard)
    cfg = train_config(str(first))
    os.remove(tmp_path / "c.mindrecord2.db")
    with pytest.raises(DataError, match=r"incomplete: c\.mindrecord2\.db is missing.*--overwrite"):
        build_train_dataset(cfg)
    os.remove(tmp_path / "c.mindrecord.json")  # without the manifest MindSpore's reader is the judge
    with pytest.raises(DataError, match=r"c\.mindrecord0 cannot be opened \(\[ERROR\].*--overwrite"):
        check_shard_set(first)
    with pytest.raises(DataError, match=r"MindRecord not found: .*nothing\.mindrecord0"):
        check_shard_set(tmp_path / "nothing.mindrecord0")
    with pytest.raises(DataError, match="data.train.mindrecord is not set"):
        build_train_dataset(train_config("null"))


def test_killed_build_leaves_nothing_usable(pairs, tmp_path):
    listing, made = pairs
    big = write_list(tmp_path / "big.txt", made * 100)  # long enough to be caught while writing
    out = tmp_path / "k.mindrecord"
    cmd = [sys.executable, str(REPO / "tools" / "build_mindrecord.py"), "--list", str(big), "--out", str(out),
           "--num-shards", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(p.is_file() for p in tmp_path.glob(".k.mindrecord.building-*/*")):
            assert proc.poll() is None and time.monotonic() < deadline, "the build ended before it was killed"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.glob(".k.mindrecord.building-*"))  # the partial files are only under the temp name
    assert not list(tmp_path.glob("k.mindrecord*"))
    with pytest.raises(DataError, match="MindRecord not found"):
        build_train_dataset(train_config(f"{out}0"))
    # An interrupted move into place leaves data files without (all) their .db indexes and no manifest.
    shutil.copy(next(tmp_path.glob(".k.mindrecord.building-*/k.mindrecord0")), tmp_path / "k.mindrecord0")
    with pytest.raises(DataError, match="cannot be opened"):
        build_train_dataset(train_config(f"{out}0"))
    os.remove(tmp_path / "k.mindrecord0")
    summary = build_mindrecord(listing, out, num_shards=2)  # a new build cleans the leftovers up
    assert not list(tmp_path.glob(".k.mindrecord.building-*"))
    assert check_shard_set(summary.first_shard) == len(made)


def test_a_build_killed_while_moving_its_shards_into_place_is_refused(pairs, tmp_path):
    """SIGKILL the moment the last shard's index is in place: the set must not pass for complete unless its
    manifest says the build finished (a tight race, so a few attempts; at least one must land in the move)."""
    listing, made = pairs
    big = write_list(tmp_path / "big.txt", made * 10)
    out = tmp_path / "m.mindrecord"
    cmd = [sys.executable, str(REPO / "tools" / "build_mindrecord.py"), "--list", str(big), "--out", str(out),
           "--num-shards", "8", "--overwrite"]
    refused = 0
    for _ in range(3):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            last_index = tmp_path / "m.mindrecord7.db"
            deadline = time.monotonic() + 120
            while not last_index.exists() and proc.poll() is None:
                assert time.monotonic() < deadline, "the build did not reach its last shard"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
        try:
            count = check_shard_set(tmp_path / "m.mindrecord0")
        except DataError as exc:
            assert "incomplete: the build writing it was interrupted" in str(exc) and "--overwrite" in str(exc)
            refused += 1
        else:
            assert json.loads((tmp_path / "m.mindrecord.json").read_text())["complete"] is True
            assert count == len(made) * 10
        last_index.unlink()  # the next attempt starts over a set that is not complete
    assert refused, "no attempt was killed between the last move and the manifest"


def test_shards_are_written_with_the_umask_mode(pairs, tmp_path):
    listing, _ = pairs
    mask = os.umask(0o027)
    try:
        summary = build_mindrecord(listing, tmp_path / "u.mindrecord", num_shards=2)
    finally:
        os.umask(mask)
    for path in summary.files:
        for file in (Path(path), Path(f"{path}.db")):
            assert file.stat().st_mode & 0o777 == 0o640, (file, oct(file.stat().st_mode))
