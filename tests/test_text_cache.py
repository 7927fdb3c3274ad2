"""The caption embeddings cached beside a dataset are those of the captions it holds now:
a dataset written again in place (same shard names, same model) gets its own."""

import json

import numpy as np
import pytest
from conftest import MODEL

from clip_video_encode.video_models.data import TextCache
from clip_video_encode.video_models.synthetic import write_dataset


class Counting:
    """A real text tower that counts the texts it embeds."""

    def __init__(self, tower):
        self.tower, self.texts = tower, 0

    def encode_text(self, texts):
        self.texts += len(texts)
        return self.tower.encode_text(texts)


@pytest.fixture(scope="module")
def tower(checkpoint):
    from clip_video_encode.models.encoder import TextEncoder

    return TextEncoder(MODEL, checkpoint, "cpu")


def write(dest, captions, checkpoint, dim):
    rows = [(np.ones((2, dim), np.float16), {"caption": c}) for c in captions]
    write_dataset(str(dest), iter(rows), len(rows), dim, MODEL, checkpoint, 3)


def cached(dest, tower, checkpoint):
    run = json.loads((dest / "run.json").read_text())
    encoder = Counting(tower)
    cache = TextCache(str(dest), encoder, run, checkpoint)
    got = [cache.shard(name, "caption") for name in ("00000", "00001")]
    return got, encoder.texts


def test_a_dataset_written_again_in_place_gets_its_own_caption_embeddings(
    tmp_path, tower, checkpoint
):
    dest = tmp_path / "ds"
    dim = tower.encode_text(["x"]).shape[1]
    first = ["a dog", "a cat", "a bird", "a boat"]
    write(dest, first, checkpoint, dim)
    (one, two), embedded = cached(dest, tower, checkpoint)
    assert embedded == 4
    np.testing.assert_allclose(one[0], tower.encode_text(first[:3]).astype(np.float16))
    _, embedded = cached(dest, tower, checkpoint)
    assert embedded == 0  # reused while the captions are the same

    second = ["a red car", "a cat", "snow on a hill", "a boat"]  # the same shard names
    write(dest, second, checkpoint, dim)
    (one, two), embedded = cached(dest, tower, checkpoint)
    np.testing.assert_allclose(one[0], tower.encode_text(second[:3]).astype(np.float16))
    np.testing.assert_allclose(two[0], tower.encode_text(second[3:]).astype(np.float16))
    assert list(one[1]) == [0, 1, 2, 3]
    assert embedded == 3  # shard 0 again; shard 1 kept (its captions did not change)
    _, embedded = cached(dest, tower, checkpoint)
    assert embedded == 0
