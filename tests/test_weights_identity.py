"""A dataset's weights are part of its identity: run.json records a digest of the weights
actually loaded, a resume with other weights (a replaced checkpoint file) is refused, random
weights (``none``) come back the same on a resume, and a text tower of other weights is
refused for a dataset."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from conftest import MODEL

from clip_video_encode.cli import main
from clip_video_encode.read import iter_samples


def encode(src, dest, pretrained, *extra):
    argv = [str(src), "--dest", str(dest), "--model", MODEL, "--pretrained", str(pretrained)]
    return main([*argv, "--fps", "2", "--quiet", "--batch-size", "16", "--workers", "1",
                 "--samples-per-shard", "1", *extra])  # fmt: skip


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory) -> str:
    """MODEL with other random weights than ``checkpoint``'s (and than ``none``'s)."""
    import open_clip
    import torch

    torch.manual_seed(2)
    model = open_clip.create_model(MODEL, pretrained=None)
    path = tmp_path_factory.mktemp("other") / "other.pt"
    torch.save(model.state_dict(), path)
    return str(path)


def sha256_of(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def twice(videos, tmp_path):
    """A table of the same video twice: two shards that must hold the same embeddings."""
    src = tmp_path / "videos.csv"
    src.write_text(f"location\n{videos['cfr.mp4']}\n{videos['cfr.mp4']}\n")
    return src


def embeddings_by_shard(dest):
    return [e for _, e, _ in iter_samples(str(dest))]


def cosine(a, b):
    a, b = a.astype(np.float32).ravel(), b.astype(np.float32).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_replaced_checkpoint_is_refused_on_resume(videos, tmp_path, checkpoint,
                                                    other_checkpoint, capsys):  # fmt: skip
    weights = tmp_path / "weights.pt"
    shutil.copyfile(checkpoint, weights)
    src, dest = twice(videos, tmp_path), tmp_path / "out"
    assert encode(src, dest, weights) == 0
    (dest / "00001_stats.json").unlink()  # the second shard was never committed
    before = embeddings_by_shard(dest)
    shutil.copyfile(other_checkpoint, weights)  # same path, other weights
    capsys.readouterr()
    assert encode(src, dest, weights) == 2
    err = capsys.readouterr().err
    assert sha256_of(checkpoint) in err and sha256_of(other_checkpoint) in err
    assert "weights_sha256" in err and "another --dest" in err
    assert len(err.strip().splitlines()) == 1
    assert len(embeddings_by_shard(dest)) == len(before) == 1  # nothing written
    # The original weights back: the resume goes on, and both shards agree.
    shutil.copyfile(checkpoint, weights)
    assert encode(src, dest, weights) == 0
    first, second = embeddings_by_shard(dest)
    assert np.array_equal(first, second)
    run = json.loads((dest / "run.json").read_text())
    assert run["weights_sha256"] == sha256_of(checkpoint)  # what sha256sum says of the file


def test_random_weights_resume_with_the_same_weights(videos, tmp_path, capsys):
    src, dest = twice(videos, tmp_path), tmp_path / "out"
    assert encode(src, dest, "none") == 0
    (dest / "00001_stats.json").unlink()
    assert encode(src, dest, "none") == 0, capsys.readouterr().err
    first, second = embeddings_by_shard(dest)
    assert cosine(first, second) > 0.9999  # the same weights, not a fresh draw
    assert np.array_equal(first, second)
    run = json.loads((dest / "run.json").read_text())
    assert run["pretrained"] == "none" and isinstance(run["weights_seed"], int)
    assert len(run["weights_sha256"]) == 64
    # Another destination with none: the same weights again, and not those of the
    # checkpoint fixture (seeded 0 by its script).
    again = tmp_path / "again"
    assert encode(src, again, "none") == 0
    assert json.loads((again / "run.json").read_text())["weights_sha256"] == run["weights_sha256"]


def test_random_weights_leave_the_callers_random_state_alone():
    import torch

    from clip_video_encode.models.weights import load_weights

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _, a = load_weights(MODEL, "none", "cpu", text=False)
    assert torch.equal(torch.rand(3), expected)
    _, b = load_weights(MODEL, "none", "cpu", text=True)
    assert a == b  # image-only and full loads of the same weights agree


def test_a_run_json_from_before_weight_digests_is_refused(videos, tmp_path, checkpoint,
                                                          capsys):  # fmt: skip
    """Its shards' weights cannot be checked: refused, saying how to go on if they are
    these weights (the digest to record) or else to use another --dest."""
    src, dest = twice(videos, tmp_path), tmp_path / "out"
    assert encode(src, dest, checkpoint) == 0
    run = json.loads((dest / "run.json").read_text())
    digest = run.pop("weights_sha256")
    (dest / "run.json").write_text(json.dumps(run))
    (dest / "00001_stats.json").unlink()
    capsys.readouterr()
    assert encode(src, dest, checkpoint) == 2
    err = capsys.readouterr().err
    assert "not recorded" in err and digest in err
    run["weights_sha256"] = digest  # what the message says to do, if they are these weights
    (dest / "run.json").write_text(json.dumps(run))
    assert encode(src, dest, checkpoint) == 0


def test_a_text_tower_of_other_weights_is_refused(checkpoint, other_checkpoint, encoder):
    from clip_video_encode.models.encoder import Encoder, EncoderOptions, TextEncoder
    from clip_video_encode.models.weights import WeightsMismatch

    digest = sha256_of(checkpoint)
    assert encoder.weights_sha256 == digest
    text = TextEncoder(MODEL, checkpoint, "cpu", expect_sha256=digest)
    assert text.weights_sha256 == digest  # the text tower alone: the same digest
    with pytest.raises(WeightsMismatch) as exc:
        TextEncoder(MODEL, other_checkpoint, "cpu", expect_sha256=digest)
    message = str(exc.value)
    assert digest in message and sha256_of(other_checkpoint) in message
    assert "--pretrained" in message and "\n" not in message
    with pytest.raises(WeightsMismatch):
        Encoder(EncoderOptions(MODEL, other_checkpoint, "fp32", "cpu", weights_sha256=digest))
    # A dataset from before digests (None): nothing to compare, accepted.
    assert TextEncoder(MODEL, other_checkpoint, "cpu", expect_sha256=None).weights_sha256


def test_a_checkpoint_overwritten_in_place_does_not_change_a_loaded_model(
    checkpoint, other_checkpoint, tmp_path
):
    """Weights are memory-mapped while loading: a file overwritten in place afterwards (cp
    keeps the inode, so a mapping would follow it) must not change the loaded model, whose
    digest names the weights it was loaded from."""
    from clip_video_encode.models.encoder import Encoder, EncoderOptions, TextEncoder

    path = tmp_path / "weights.pt"
    shutil.copyfile(checkpoint, path)
    frames = np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    encoder = Encoder(EncoderOptions(MODEL, pretrained=str(path), precision="fp32"))
    text = TextEncoder(MODEL, str(path), "cpu")
    before = encoder.encode(frames), text.encode_text(["a red frame"])
    inode = path.stat().st_ino
    with open(path, "r+b") as f, open(other_checkpoint, "rb") as other:
        f.write(other.read())  # in place: the same inode, other bytes
        f.truncate()
    assert path.stat().st_ino == inode
    np.testing.assert_array_equal(encoder.encode(frames), before[0])
    np.testing.assert_array_equal(text.encode_text(["a red frame"]), before[1])
    assert encoder.weights_sha256 == sha256_of(checkpoint)


def test_a_checkpoint_rewritten_in_place_with_its_size_and_mtime_is_hashed_anew(tmp_path):
    """``cp -p other.pt weights.pt`` of the same size keeps the inode, the size and (by -p)
    the modification time: only the change time tells. A long-lived process (the search
    server) must not take the old digest for the new weights."""
    import os

    from clip_video_encode.models.weights import _stamp, file_sha256

    path = tmp_path / "weights.pt"
    path.write_bytes(b"a" * 4096)
    first = file_sha256(str(path))
    stamp = _stamp(str(path))
    info = os.stat(path)
    with open(path, "r+b") as f:  # in place, as cp does: same inode, same size
        f.write(b"b" * 4096)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # as -p does
    assert os.stat(path).st_mtime_ns == info.st_mtime_ns and os.stat(path).st_ino == info.st_ino
    assert file_sha256(str(path)) != first
    assert _stamp(str(path)) != stamp  # the in-load check sees it too
