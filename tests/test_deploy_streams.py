"""tools/predict.py on streams: a video gives a video of as many overlaid frames of the same size; a folder
with undecodable files predicts the others, lists what it skipped and exits 2; summary.json marks completion."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import run_tool
from deeplabv3.config import load_config
from deeplabv3.evaluation.predictor import Predictor, load_eval_network
from deeplabv3.evaluation.streams import overlay_with_legend
from deploy_helpers import demo_setup
from eval_helpers import random_image

FRAMES, WIDTH, HEIGHT = 7, 96, 64


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy_streams")
    config_path, checkpoint, _, _ = demo_setup(root)
    return root, config_path, checkpoint


def _write_video(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (WIDTH, HEIGHT))
    for frame in frames:
        writer.write(frame)
    writer.release()


def _read_video(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_a_video_gives_as_many_overlaid_frames_of_the_same_size(demo, tmp_path):
    root, config_path, checkpoint = demo
    clip = tmp_path / "clip.avi"
    _write_video(clip, [random_image(HEIGHT, WIDTH, seed=i) for i in range(FRAMES)])
    decoded = _read_video(clip)  # what the tool sees after compression
    out = tmp_path / "out" / "seg.mp4"
    result = run_tool("predict", ["--config", config_path, "--checkpoint", checkpoint, "--input", clip,
                                  "--out-video", out, "--set", "eval.batch_size=3"])
    assert result.returncode == 0, result.stderr
    assert f"{FRAMES} frames, " in result.stdout and "frames/s" in result.stdout
    written = _read_video(out)
    assert len(written) == FRAMES and all(f.shape == (HEIGHT, WIDTH, 3) for f in written)
    assert sorted(p.name for p in out.parent.iterdir()) == ["seg.mp4"]

    cfg = load_config(config_path)
    predictor = Predictor(load_eval_network(cfg, checkpoint)[0], cfg)
    for frame, got in zip(decoded, written):
        expected = overlay_with_legend(frame, predictor.predict(frame), cfg.class_names)
        assert np.abs(got.astype(float) - expected).mean() < 6  # the overlay, up to the codec's loss
        assert np.abs(got.astype(float) - frame).mean() > 3 * np.abs(got.astype(float) - expected).mean()


def test_undecodable_images_are_skipped_listed_and_exit_2(demo, tmp_path):
    root, config_path, checkpoint = demo
    images = tmp_path / "photos"
    images.mkdir()
    for name in ("a", "c"):
        cv2.imwrite(str(images / f"{name}.png"), random_image(30, 40))
    (images / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (images / "d.png").write_bytes(b"")
    out = tmp_path / "pred"
    out.mkdir()
    (out / "summary.json").write_text('{"stale": true}')  # an earlier run's marker never survives a new run
    result = run_tool("predict", ["--config", config_path, "--checkpoint", checkpoint, "--input", images,
                                  "--out-dir", out, "--overlay"])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "2 of 4 input(s) could not be decoded" in result.stderr
    assert str(images / "b.jpg") in result.stderr and str(images / "d.png") in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True
    assert [r["image"] for r in summary["images"]] == [str(images / "a.png"), str(images / "c.png")]
    assert [s["image"] for s in summary["skipped"]] == [str(images / "b.jpg"), str(images / "d.png")]
    assert sorted(summary["files"]) == ["a.png", "a_overlay.jpg", "c.png", "c_overlay.jpg"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*summary["files"], "summary.json"])


def test_stream_arguments_are_checked(demo, tmp_path):
    root, config_path, checkpoint = demo
    base = ["--config", config_path, "--checkpoint", checkpoint]
    no_video_out = run_tool("predict", [*base, "--input", tmp_path / "clip.mp4", "--out-dir", tmp_path])
    assert no_video_out.returncode == 2 and "--out-video" in no_video_out.stderr
    missing = run_tool("predict", [*base, "--input", tmp_path / "clip.mp4", "--out-video", tmp_path / "o.mp4"])
    assert missing.returncode == 2 and "no such video file" in missing.stderr
    clip = tmp_path / "clip.avi"
    _write_video(clip, [random_image(HEIGHT, WIDTH)])
    (tmp_path / "file").write_text("")
    blocked = run_tool("predict", [*base, "--input", clip, "--out-video", tmp_path / "file" / "o.mp4"])
    assert blocked.returncode == 2 and "is not a writable directory" in blocked.stderr
    suffix = run_tool("predict", [*base, "--input", clip, "--out-video", tmp_path / "o.txt"])
    assert suffix.returncode == 2 and "out.mp4" in suffix.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "file"]
