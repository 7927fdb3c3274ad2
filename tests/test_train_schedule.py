"""clip-video-train's learning-rate schedule covers the steps that really run: the last
partial batch of an epoch is a step too, and rows without a caption are none."""

import math

import numpy as np
import pytest
import torch
from conftest import MODEL

from clip_video_encode.video_models.synthetic import write_dataset


@pytest.fixture(scope="module")
def text_encoder(checkpoint):
    from clip_video_encode.models.encoder import TextEncoder

    return TextEncoder(MODEL, checkpoint, "cpu")


def dataset(tmp_path, text_encoder, checkpoint, n, uncaptioned=()):
    captions = [f"clip number {i}" for i in range(n)]
    texts = text_encoder.encode_text(captions)
    rng = np.random.default_rng(0)

    def videos():
        for i in range(n):
            frames = texts[i] + rng.normal(0, 0.05, (4, texts.shape[1]))
            caption = None if i in uncaptioned else captions[i]
            yield frames.astype(np.float16), {"caption": caption, "split": "train"}

    dest = tmp_path / "ds"
    write_dataset(str(dest), videos(), n, texts.shape[1], MODEL, checkpoint, 8)
    return dest, texts.shape[1]


def lrs_per_step(monkeypatch, dest, out, dim, text_encoder, checkpoint, **options):
    """Train, recording the learning rate each optimizer step runs with."""
    from clip_video_encode.video_models.data import TextCache
    from clip_video_encode.video_models.train import TrainOptions, train

    seen = []
    step = torch.optim.AdamW.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording)
    run = {"model": MODEL, "pretrained": checkpoint}
    cache = TextCache(str(dest), text_encoder, run, checkpoint)
    options = TrainOptions(aggregator="wavg", val_fraction=0.0, **options)
    history = []
    last = train(str(dest), str(out), options, cache, dim, progress=False,
                 log=history.append)  # fmt: skip
    return seen, last


def cosine(step, total, lr):
    return lr * 0.5 * (1 + math.cos(math.pi * step / total))


def test_the_cosine_spans_every_step_that_runs(tmp_path, monkeypatch, text_encoder, checkpoint):
    """30 videos in batches of 16: 2 steps an epoch (16 + 14), 8 in 4 epochs. The lr was
    planned for 30 // 16 = 1 a epoch: 5e-4 after the first epoch, then 0 from the third step
    on, and the temperature frozen from epoch 2."""
    dest, dim = dataset(tmp_path, text_encoder, checkpoint, 30)
    seen, last = lrs_per_step(monkeypatch, dest, tmp_path / "agg.pt", dim, text_encoder,
                              checkpoint, epochs=4, batch_size=16, lr=1e-3)  # fmt: skip
    assert len(seen) == 8
    np.testing.assert_allclose(seen, [cosine(k, 8, 1e-3) for k in range(8)], rtol=1e-6)
    assert seen[-1] > 0 and seen[-1] < 0.05e-3  # near 0 at the last step, not before
    assert all(lr > 0.1e-3 for lr in seen[:6])
    assert last["steps"] == 2 and last["lr"] == pytest.approx(0.0, abs=1e-12)


def test_rows_without_a_caption_are_no_steps(tmp_path, monkeypatch, text_encoder, checkpoint):
    """24 videos, 7 without a caption: 17 train, in batches of 8 -> 8 + 8 (a batch of one
    teaches nothing and is left out), 2 steps an epoch; the 24 rows would plan 3."""
    uncaptioned = set(range(0, 21, 3))
    dest, dim = dataset(tmp_path, text_encoder, checkpoint, 24, uncaptioned=uncaptioned)
    seen, _ = lrs_per_step(monkeypatch, dest, tmp_path / "agg.pt", dim, text_encoder,
                           checkpoint, epochs=3, batch_size=8, lr=1e-3)  # fmt: skip
    assert len(seen) == 6
    np.testing.assert_allclose(seen, [cosine(k, 6, 1e-3) for k in range(6)], rtol=1e-6)
