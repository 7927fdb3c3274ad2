"""Queries are embedded by the weights a dataset was encoded with, checked by their digest
(run.json's ``weights_sha256``): search (text and image queries, its sessions and their
shared towers), summaries and video models refuse other weights, naming both digests; a
dataset of ``--pretrained none`` (random weights from a recorded seed) can be queried."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from conftest import MODEL

from clip_video_encode.cli import main as encode_main
from clip_video_encode.search.cli import main as search_main

torch = pytest.importorskip("torch")


def encode(videos, dest, pretrained, tmp_path, names=("cfr.mp4", "vp9.webm")):
    table = tmp_path / f"{dest.name}.csv"
    table.write_text("location,caption\n" + "".join(
        f"{videos[n]},video {i}\n" for i, n in enumerate(names)))  # fmt: skip
    assert encode_main([str(table), "--dest", str(dest), "--model", MODEL, "--pretrained",
                        str(pretrained), "--fps", "2", "--quiet", "--workers", "1",
                        "--batch-size", "16"]) == 0  # fmt: skip
    return json.loads((dest / "run.json").read_text())


def sha256_of(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory) -> str:
    """MODEL with other random weights than the ``checkpoint`` fixture's."""
    import open_clip

    torch.manual_seed(5)
    model = open_clip.create_model(MODEL, pretrained=None)
    path = tmp_path_factory.mktemp("other") / "other.pt"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def random_dataset(videos, tmp_path_factory):
    """A real encode with ``--pretrained none``."""
    root = tmp_path_factory.mktemp("random")
    dest = root / "ds"
    run = encode(videos, dest, "none", root)
    assert run["pretrained"] == "none" and len(run["weights_sha256"]) == 64
    assert isinstance(run["weights_seed"], int)
    return dest


@pytest.fixture(scope="module")
def file_dataset(videos, checkpoint, tmp_path_factory):
    """A real encode with a checkpoint file of its own (tests replace it, then restore it)."""
    root = tmp_path_factory.mktemp("file")
    weights = root / "weights.pt"
    shutil.copyfile(checkpoint, weights)
    dest = root / "ds"
    assert encode(videos, dest, weights, root)["weights_sha256"] == sha256_of(checkpoint)
    return dest, weights


def search_json(argv, capsys):
    capsys.readouterr()
    rc = search_main([*argv, "--device", "cpu", "--json", "--top", "20"])
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.splitlines() if line.strip()], err


def frames_of(dest):
    from clip_video_encode.read import iter_samples

    return {meta["key"]: e.astype(np.float32) for _, e, meta in iter_samples(str(dest))}


def best_cosines(frames, query):
    q = query / np.linalg.norm(query)
    return {k: float((e / np.linalg.norm(e, axis=1, keepdims=True) @ q).max())
            for k, e in frames.items()}  # fmt: skip


def test_a_random_weight_dataset_is_searched_with_its_own_random_weights(random_dataset,
                                                                        capsys):  # fmt: skip
    from clip_video_encode.models.encoder import TextEncoder

    rc, moments, err = search_json([str(random_dataset), "a dog"], capsys)
    assert rc == 0, err
    tower = TextEncoder(MODEL, "none", "cpu")  # the seeded weights, drawn again here
    assert tower.weights_sha256 == json.loads((random_dataset / "run.json").read_text())[
        "weights_sha256"]  # fmt: skip
    expected = best_cosines(frames_of(random_dataset), tower.encode_text(["a dog"])[0])
    got = {}
    for m in moments:
        got[m["key"]] = max(got.get(m["key"], -1.0), m["score"])
    assert got.keys() == expected.keys()
    for key, score in expected.items():
        assert got[key] == pytest.approx(score, abs=1e-3)


def test_an_image_query_on_a_random_weight_dataset(random_dataset, tmp_path, capsys):
    """A frame of the dataset's first video, as a picture: that video comes first, with the
    frame's own score (the image tower of the same random weights)."""
    from PIL import Image

    from clip_video_encode.read import iter_samples
    from video2numpy import FrameOptions, Sampling, read_videos

    key, _, meta = next(iter(iter_samples(str(random_dataset))))
    ((pixels, record),) = read_videos([meta["location"]], FrameOptions(Sampling(fps=2)), 0)
    assert record["timestamps"] == meta["timestamps"]  # the frames that were encoded
    path = tmp_path / "frame.png"
    Image.fromarray(pixels[0]).save(path)
    rc, moments, err = search_json([str(random_dataset), str(path)], capsys)
    assert rc == 0, err
    assert moments[0]["key"] == key and moments[0]["score"] > 0.999


def test_random_weights_without_a_recorded_seed_are_still_refused(random_dataset, tmp_path,
                                                                  capsys):  # fmt: skip
    dest = tmp_path / "ds"
    shutil.copytree(random_dataset, dest)
    run = json.loads((dest / "run.json").read_text())
    del run["weights_seed"]
    (dest / "run.json").write_text(json.dumps(run))
    rc, _, err = search_json([str(dest), "a dog"], capsys)
    assert rc == 2 and "random weights" in err and "weights_seed" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("change", ["digest", "seed"])
def test_random_weights_drawn_otherwise_are_refused(random_dataset, tmp_path, capsys, change):
    """A run.json whose random weights this version does not draw (another seed, or the
    same seed drawing other values with other versions): refused, saying why."""
    dest = tmp_path / "ds"
    shutil.copytree(random_dataset, dest)
    run = json.loads((dest / "run.json").read_text())
    ours = run["weights_sha256"]
    if change == "digest":
        run["weights_sha256"] = "ab" * 32
    else:
        run["weights_seed"] += 1
    (dest / "run.json").write_text(json.dumps(run))
    rc, _, err = search_json([str(dest), "a dog"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    if change == "digest":
        assert "ab" * 32 in err and ours in err and "torch" in err
    else:
        assert f"seed {run['weights_seed']}" in err


def test_a_random_weight_dataset_refuses_other_weights(random_dataset, checkpoint, capsys):
    digest = json.loads((random_dataset / "run.json").read_text())["weights_sha256"]
    rc, _, err = search_json([str(random_dataset), "a dog", "--pretrained", checkpoint], capsys)
    assert rc == 2
    assert digest in err and sha256_of(checkpoint) in err and "--pretrained" in err
    assert len(err.strip().splitlines()) == 1


def replaced(weights, other):
    """The checkpoint at ``weights`` swapped for ``other`` for a while: a copy renamed over
    it, as ``mv`` does (a new file at the same path)."""

    def put(source):
        partial = weights.with_suffix(".partial")
        shutil.copyfile(source, partial)
        os.replace(partial, weights)

    class Swap:
        def __enter__(self):
            self.saved = weights.with_suffix(".saved")
            shutil.copyfile(weights, self.saved)
            put(other)

        def __exit__(self, *exc):
            put(self.saved)

    return Swap()


def test_a_replaced_checkpoint_is_refused_by_every_query_tool(file_dataset, checkpoint,
                                                              other_checkpoint, tmp_path,
                                                              capsys):  # fmt: skip
    from PIL import Image

    from clip_video_encode.summarize.cli import main as summarize_main
    from clip_video_encode.video_models.cli import eval_main

    dest, weights = file_dataset
    rc, moments, err = search_json([str(dest), "a dog"], capsys)
    assert rc == 0 and moments, err  # the file it was encoded with: searched
    picture = tmp_path / "query.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(picture)
    want, have = sha256_of(checkpoint), sha256_of(other_checkpoint)

    def refused(rc, err):
        assert rc == 2
        assert want in err and have in err and "--pretrained" in err, err
        assert len(err.strip().splitlines()) == 1

    with replaced(weights, other_checkpoint):
        refused(*search_json([str(dest), "a dog"], capsys)[::2])
        refused(*search_json([str(dest), str(picture)], capsys)[::2])  # the image tower
        capsys.readouterr()
        refused(summarize_main([str(dest), "--query", "a dog", "--device", "cpu"]),
                capsys.readouterr().err)  # fmt: skip
        refused(eval_main(["retrieval", str(dest), "--device", "cpu", "--quiet"]),
                capsys.readouterr().err)  # fmt: skip
        refused(eval_main(["zeroshot", str(dest), "--label-column", "caption", "--device",
                           "cpu", "--quiet"]), capsys.readouterr().err)  # fmt: skip
    # And a session (the server's) refuses it too.
    from clip_video_encode.models.weights import WeightsMismatch
    from clip_video_encode.search.session import SearchSession

    with replaced(weights, other_checkpoint), pytest.raises(WeightsMismatch):
        SearchSession(str(dest), device="cpu")


def test_shared_towers_are_those_of_each_datasets_weights(file_dataset, videos, checkpoint,
                                                          other_checkpoint, tmp_path):  # fmt: skip
    """Two datasets encoded from one path whose file was replaced in between: a server
    over both (one set of towers) embeds each one's queries with its own weights."""
    from clip_video_encode.models.encoder import TextEncoder
    from clip_video_encode.search.session import SearchSession, Towers

    first, weights = file_dataset
    second = tmp_path / "second"
    with replaced(weights, other_checkpoint):
        assert encode(videos, second, weights, tmp_path)["weights_sha256"] == sha256_of(
            other_checkpoint)  # fmt: skip
        towers = Towers("cpu")
        b = SearchSession(str(second), towers=towers, device="cpu")
    a = SearchSession(str(first), towers=towers, device="cpu")  # the path holds the first again
    for session, truth in ((a, checkpoint), (b, other_checkpoint)):
        expected = TextEncoder(MODEL, truth, "cpu").encode_text(["a dog"])[0]
        np.testing.assert_allclose(session.embed_text("a dog"), expected, atol=1e-5)
