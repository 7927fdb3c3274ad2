"""``center`` in clip-video-eval (zero-shot pooled, retrieval, linear probe) is the video's
middle frame by time, chosen from all its frames, as in clip-video-pool: not the middle of
the frames --max-frames kept.

Each video has 100 frames at 1 fps. Its middle by time is frame 49 (49.5 s is halfway; the
earlier of the two nearest); thinned to 32 frames first, the middle one was frame 46. Frame
49 holds the video's own answer; the others a wrong one (another class's text, or noise)."""

import json

import numpy as np
import pytest
from conftest import MODEL

from clip_video_encode.video_models.cli import eval_main
from clip_video_encode.video_models.synthetic import write_dataset

NAMES = ["archery", "bowling", "juggling balls", "playing violin", "surfing water"]
MIDDLE, THINNED_MIDDLE, N_FRAMES = 49, 46, 100


@pytest.fixture(scope="module")
def texts(checkpoint):
    from clip_video_encode.models.encoder import TextEncoder

    tower = TextEncoder(MODEL, checkpoint, "cpu")
    embedded = tower.encode_text(NAMES).astype(np.float64)
    return embedded / np.linalg.norm(embedded, axis=1, keepdims=True)


def frames(rng, dim, middle, others=None):
    """``middle`` at the middle frame by time; every other frame ``others``, or random."""
    out = rng.normal(0, 1, (N_FRAMES, dim)) if others is None else np.tile(others, (N_FRAMES, 1))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    out[MIDDLE] = middle
    return out.astype(np.float16)


@pytest.fixture(scope="module")
def named_dataset(texts, checkpoint, tmp_path_factory):
    """Video i: its caption NAMES[i % 5] at the middle frame, NAMES[(i + 1) % 5] in every
    other frame (the thinned middle, 46, among them)."""
    rng = np.random.default_rng(0)
    k, dim = len(NAMES), texts.shape[1]

    def videos():
        for i in range(2 * k):
            c = i % k
            yield frames(rng, dim, texts[c], others=texts[(c + 1) % k]), {
                "caption": NAMES[c], "timestamps": list(range(N_FRAMES))}  # fmt: skip

    dest = tmp_path_factory.mktemp("named") / "ds"
    write_dataset(str(dest), videos(), 2 * k, dim, MODEL, checkpoint, 4)
    return dest


def run(argv, capsys):
    assert eval_main([*argv, "--max-frames", "32", "--device", "cpu", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_zeroshot_pooled_center_is_the_middle_frame(named_dataset, capsys):
    argv = ["--label-column", "caption", "--templates", "none", "--score", "pooled", "--quiet"]
    got = run(["zeroshot", str(named_dataset), *argv, "--aggregator", "center"], capsys)
    assert got["n"] == 10 and got["top1"] == 1.0 and got["aggregator"] == "center"


def test_retrieval_center_is_the_middle_frame(named_dataset, capsys):
    got = run(["retrieval", str(named_dataset), "--caption-column", "caption", "--aggregator",
               "center", "--quiet"], capsys)  # fmt: skip
    # Two videos per caption: each caption's best video is one of its own (rank 1), and
    # each video's best caption is its own.
    assert got["v2t_r1"] == 1.0 and got["t2v_r1"] == 1.0


def test_other_aggregators_still_see_the_thinned_frames(named_dataset, capsys):
    """mean pools the 32 kept frames, which hold another class and not frame 49."""
    kept = np.linspace(0, N_FRAMES, 32, endpoint=False).astype(np.int64)
    assert THINNED_MIDDLE in kept and MIDDLE not in kept
    argv = ["--label-column", "caption", "--templates", "none", "--score", "pooled", "--quiet"]
    got = run(["zeroshot", str(named_dataset), *argv, "--aggregator", "mean"], capsys)
    assert got["top1"] == 0.0  # every video: the next class


@pytest.fixture(scope="module")
def probe_datasets(checkpoint, tmp_path_factory):
    """A class direction (plus a little noise) at the middle frame, noise in the others: a
    probe on the middle frame is right, one on frame 46 at chance."""
    rng = np.random.default_rng(1)
    k, dim = 4, 32
    directions = np.eye(dim)[:k]
    root = tmp_path_factory.mktemp("probe")
    out = []
    for name, n in (("train", 40), ("val", 20)):

        def videos(n=n):
            for i in range(n):
                c = i % k
                middle = directions[c] + rng.normal(0, 0.05, dim)
                yield frames(rng, dim, middle / np.linalg.norm(middle)), {
                    "caption": f"class {c}", "timestamps": list(range(N_FRAMES))}  # fmt: skip

        write_dataset(str(root / name), videos(), n, dim, MODEL, checkpoint, 16)
        out.append(root / name)
    return out


def test_linear_probe_center_is_the_middle_frame(probe_datasets, capsys):
    train, val = probe_datasets
    got = run(["linear-probe", str(train), str(val), "--aggregator", "center"], capsys)
    assert got["n"] == 20 and got["top1"] == 1.0
