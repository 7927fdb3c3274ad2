"""A search index is written as one generation at a time: a reader opened on one keeps
answering from it alone (frames, tables, ANN) while a newer one replaces it on disk, and an
ANN index is used only with the generation it was built from."""

import json
import os

import numpy as np
import pytest
from conftest import MODEL

from clip_video_encode.search import SearchIndex, search, write_index


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def videos_of(frames_by_key):
    return iter([({"key": k, "id": k, "location": None, "caption": None, "duration": len(e)},
                  e, np.arange(len(e), dtype=np.float64))
                 for k, e in frames_by_key.items()])  # fmt: skip


@pytest.fixture
def two_generations(tmp_path):
    """Generation 1: 20 videos; generation 2: the same frames, the videos in reverse order
    (so every row of the frame file belongs to another video than before)."""
    rng = np.random.default_rng(0)
    frames = {f"v{k:02d}": unit(rng.standard_normal((10, 32))) for k in range(20)}
    folder = str(tmp_path / "_search")
    write_index(folder, videos_of(frames), {"model": "test"})
    old = SearchIndex(folder)
    write_index(folder, videos_of(dict(reversed(frames.items()))), {"model": "test"})
    return folder, old, frames


def test_an_open_index_answers_from_its_own_generation(two_generations):
    folder, old, frames = two_generations
    assert old.resident is None  # scored from the file, slice by slice
    new = SearchIndex(folder)
    for key, e in frames.items():
        query = e[4]
        for index in (old, new):
            (top,) = search(index, query, top=1)
            assert top.key == key and top.peak_s == 4.0
            assert top.score == pytest.approx(1.0, abs=2e-3)
    assert new.generation != old.generation
    # Only the newest generation is kept on disk; the old reader holds its files open.
    kept = [n for n in os.listdir(folder) if not n.startswith(".") and n != "index.json"]
    assert kept == [new.generation]
    assert json.load(open(os.path.join(folder, "index.json")))["generation"] == new.generation


def test_a_stale_readers_ann_is_not_used_by_the_new_generation(two_generations):
    pytest.importorskip("faiss")
    from clip_video_encode.search import build_ann, rank_moments_ann

    folder, old, frames = two_generations
    stale = build_ann(old)  # a long-lived reader builds its ANN after the index was rebuilt
    new = SearchIndex(folder)
    ann = build_ann(new)
    for key, e in frames.items():  # 3 ANN frames per moment: only their videos are scored
        exact = search(new, e[2], top=2)
        approx = rank_moments_ann(new, ann, e[2], top=2, candidates=3)
        assert [m.key for m in approx] == [m.key for m in exact] and exact[0].key == key
        assert [m.key for m in rank_moments_ann(old, stale, e[2], top=1, candidates=3)] == [key]


def test_an_ann_file_of_another_index_is_rebuilt(tmp_path):
    pytest.importorskip("faiss")
    import shutil

    from clip_video_encode.search import ANN_FILE, build_ann

    rng = np.random.default_rng(1)
    one = {k: unit(rng.standard_normal((8, 16))) for k in "xyz"}
    two = {k: unit(rng.standard_normal((8, 16))) for k in "xyz"}
    write_index(str(tmp_path / "one"), videos_of(one), {})
    write_index(str(tmp_path / "two"), videos_of(two), {})
    a, b = SearchIndex(str(tmp_path / "one")), SearchIndex(str(tmp_path / "two"))
    build_ann(a)
    for name in os.listdir(os.path.dirname(a.path(ANN_FILE))):
        if name.startswith("ann"):  # the ANN of index one, copied over index two's
            shutil.copy(os.path.join(os.path.dirname(a.path(ANN_FILE)), name),
                        os.path.dirname(b.path(ANN_FILE)))  # fmt: skip
    ann = build_ann(b)
    from clip_video_encode.search import rank_moments_ann

    for key, e in two.items():
        assert rank_moments_ann(b, ann, e[3], top=1)[0].key == key
    stamp = json.load(open(b.path("ann.json")))
    assert stamp["index"] == b.generation


def test_a_session_over_a_dataset_encoded_again_stays_whole(tmp_path, checkpoint):
    """A server's session (index larger than its memory budget: read from disk per query)
    over a dataset that is then written again in place and its index rebuilt: its answers
    still name the videos whose frames they scored."""
    from clip_video_encode.search import build_index
    from clip_video_encode.search.session import SearchSession
    from clip_video_encode.video_models.synthetic import write_dataset

    rng = np.random.default_rng(2)
    dest = str(tmp_path / "ds")

    def write(frames, locations):
        rows = [(f.astype(np.float16), {"caption": loc, "location": loc})
                for f, loc in zip(frames, locations, strict=True)]  # fmt: skip
        write_dataset(dest, iter(rows), len(rows), frames[0].shape[1], MODEL, checkpoint, 2)

    from clip_video_encode.models.encoder import TextEncoder

    dim = TextEncoder(MODEL, checkpoint, "cpu").encode_text(["x"]).shape[1]
    frames = [unit(rng.standard_normal((6, dim))) for _ in range(3)]
    write(frames, ["first", "second", "third"])
    session = SearchSession(dest, device="cpu", memory_budget=0)
    assert session.index.resident is None
    write(frames[::-1], ["third", "second", "first"])  # encoded again, rows in another order
    build_index(dest)  # a query from the command line rebuilds the index
    for v, location in enumerate(["first", "second", "third"]):
        (hit,) = session.search(frames[v][1], top=1)
        assert hit.location == location and hit.moment.peak_s == 1.0
        assert hit.curve_scores[1] == pytest.approx(1.0, abs=2e-3)
    fresh = SearchSession(dest, device="cpu", memory_budget=0)
    assert fresh.search(frames[0][1], top=1)[0].location == "first"
    assert fresh.index.generation != session.index.generation


def test_an_index_of_the_older_layout_is_written_again(tmp_path, checkpoint):
    """An index of the single-folder layout (files at the top, no generation) is not read
    as is: build_index writes a generation and removes the old layout's files."""
    from clip_video_encode.search import build_index
    from clip_video_encode.video_models.synthetic import write_dataset

    dest = tmp_path / "ds"
    frames = unit(np.random.default_rng(3).standard_normal((4, 8)))
    write_dataset(str(dest), iter([(frames.astype(np.float16), {"caption": "x"})]), 1, 8,
                  MODEL, checkpoint)  # fmt: skip
    folder = build_index(str(dest))
    info = json.load(open(os.path.join(folder, "index.json")))
    legacy = {k: v for k, v in info.items() if k != "generation"}
    for name in os.listdir(folder):
        if name.startswith("g"):
            for inner in os.listdir(os.path.join(folder, name)):
                os.rename(os.path.join(folder, name, inner), os.path.join(folder, inner))
            os.rmdir(os.path.join(folder, name))
    json.dump(legacy, open(os.path.join(folder, "index.json"), "w"))
    with pytest.raises(ValueError, match="older layout"):
        SearchIndex(folder)
    assert build_index(str(dest)) == folder
    index = SearchIndex(folder)
    assert sorted(os.listdir(folder)) == sorted([".lock", "index.json", index.generation])
    assert search(index, frames[2], top=1)[0].peak_s == 2.0


@pytest.mark.parametrize("name", ["../../etc", "/etc", "g0000000000000000-000000/../x", "", 7])
def test_a_pointer_naming_anything_but_a_generation_is_refused(tmp_path, name):
    (tmp_path / "index.json").write_text(json.dumps({"generation": name}))
    with pytest.raises(ValueError, match="not a generation of a search index"):
        SearchIndex(str(tmp_path))


def test_a_failed_build_leaves_the_current_generation(tmp_path):
    rng = np.random.default_rng(4)
    frames = {"a": unit(rng.standard_normal((3, 8)))}
    write_index(str(tmp_path), videos_of(frames), {})
    before = SearchIndex(str(tmp_path)).generation

    def broken():
        yield from videos_of(frames)
        raise RuntimeError("the dataset went away")

    with pytest.raises(RuntimeError):
        write_index(str(tmp_path), broken(), {})
    with pytest.raises(ValueError, match="no successfully encoded video"):
        write_index(str(tmp_path), iter([]), {})
    assert SearchIndex(str(tmp_path)).generation == before
    assert sorted(os.listdir(tmp_path)) == sorted([".lock", "index.json", before])
