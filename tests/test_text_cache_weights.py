"""Cached caption embeddings belong to the weights that computed them, by digest: a checkpoint
replaced at the same path (same size, same modification time, as ``cp -p`` or ``rsync -t``
leave it) gets embeddings of its own, and the same weights moved to another path keep theirs."""

import json
import os
import shutil

import numpy as np
import pytest
from conftest import MODEL

from clip_video_encode.video_models.data import TEXT_CACHE, TextCache
from clip_video_encode.video_models.synthetic import write_dataset

CAPTIONS = ["a dog", "a cat", "a bird", "a boat"]


class Counting:
    """A real text tower that counts the texts it embeds (its other attributes: the tower's)."""

    def __init__(self, tower):
        self.tower, self.texts = tower, 0

    def encode_text(self, texts):
        self.texts += len(texts)
        return self.tower.encode_text(texts)

    def __getattr__(self, name):
        return getattr(self.tower, name)


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory) -> str:
    import open_clip
    import torch

    torch.manual_seed(3)
    model = open_clip.create_model(MODEL, pretrained=None)
    path = tmp_path_factory.mktemp("other") / "vit-s-32-random.pt"  # same size as it
    torch.save(model.state_dict(), path)
    return str(path)


def dataset(tmp_path, weights, dim, **run_extra):
    dest = tmp_path / "ds"
    rows = [(np.ones((2, dim), np.float16), {"caption": c}) for c in CAPTIONS]
    write_dataset(str(dest), iter(rows), len(rows), dim, MODEL, str(weights), 4)
    if run_extra:
        run = json.loads((dest / "run.json").read_text())
        (dest / "run.json").write_text(json.dumps({**run, **run_extra}))
    return dest


def embedded(dest, weights, tower=None):
    """``(embeddings of shard 0, texts embedded now)`` through a fresh cache."""
    from clip_video_encode.models.encoder import TextEncoder

    encoder = Counting(tower or TextEncoder(MODEL, str(weights), "cpu"))
    run = json.loads((dest / "run.json").read_text())
    got, _ = TextCache(str(dest), encoder, run, str(weights)).shard("00000", "caption")
    return got, encoder.texts


def test_a_checkpoint_replaced_with_the_same_size_and_time_is_embedded_again(
    tmp_path, checkpoint, other_checkpoint
):
    from clip_video_encode.models.encoder import TextEncoder

    weights = tmp_path / "weights.pt"
    shutil.copyfile(checkpoint, weights)
    assert os.path.getsize(checkpoint) == os.path.getsize(other_checkpoint)  # the premise
    first = TextEncoder(MODEL, str(weights), "cpu")
    dest = dataset(tmp_path, weights, first.encode_text(["x"]).shape[1])
    got, n = embedded(dest, weights, first)
    assert n == 4
    stamp = os.stat(weights)
    partial = tmp_path / "weights.partial"
    shutil.copyfile(other_checkpoint, partial)
    os.utime(partial, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # as cp -p leaves it
    os.replace(partial, weights)
    second = TextEncoder(MODEL, str(weights), "cpu")
    got, n = embedded(dest, weights, second)
    assert n == 4  # not the first weights' embeddings, though size and time are the same
    np.testing.assert_allclose(got, second.encode_text(CAPTIONS).astype(np.float16))
    assert not np.allclose(got, first.encode_text(CAPTIONS).astype(np.float16), atol=1e-2)


def test_the_same_weights_at_another_path_keep_their_embeddings(tmp_path, checkpoint):
    from clip_video_encode.models.encoder import TextEncoder

    weights = tmp_path / "a" / "weights.pt"
    weights.parent.mkdir()
    shutil.copyfile(checkpoint, weights)
    tower = TextEncoder(MODEL, str(weights), "cpu")
    dest = dataset(tmp_path, weights, tower.encode_text(["x"]).shape[1])
    assert embedded(dest, weights, tower)[1] == 4
    moved = tmp_path / "b" / "renamed.pt"
    moved.parent.mkdir()
    shutil.move(weights, moved)
    os.utime(moved)  # touched too: a new time, the same bytes
    got, n = embedded(dest, moved)
    assert n == 0  # the same weights: read back
    np.testing.assert_allclose(got, tower.encode_text(CAPTIONS).astype(np.float16))


def test_the_folder_is_named_by_the_digest_and_a_safe_model_name(tmp_path, checkpoint):
    """run.json's weights_sha256 names the folder where the tower does not say what it
    loaded; a model name with a slash (``hf-hub:org/name``) stays one folder."""
    from clip_video_encode.models.encoder import TextEncoder

    tower = TextEncoder(MODEL, checkpoint, "cpu")
    digest = tower.weights_sha256

    class Bare:  # a tower that does not say what it loaded
        def encode_text(self, texts):
            return tower.encode_text(texts)

    dest = dataset(tmp_path, checkpoint, tower.encode_text(["x"]).shape[1],
                   weights_sha256=digest)  # fmt: skip
    run = json.loads((dest / "run.json").read_text())
    TextCache(str(dest), Bare(), run, "some-tag").shard("00000", "caption")
    TextCache(str(dest), tower, run, checkpoint).shard("00000", "caption")
    assert os.listdir(dest / TEXT_CACHE) == [f"{MODEL}-{digest[:16]}"]  # one folder: one key
    odd = {**run, "model": "hf-hub:org/../name"}
    cache = TextCache(str(dest), tower, odd, checkpoint)
    folder, name = os.path.split(cache.folder)
    assert folder == str(dest / TEXT_CACHE) and name.endswith(digest[:16])
    assert "/" not in name and ":" not in name
