"""Video ReCap's three levels from an embedding dataset: windows, segments, a vector per video."""

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import MODEL

from clip_video_encode.hierarchy.cli import main as hierarchy_main
from clip_video_encode.read import iter_samples
from video2numpy.synth import write_video

LONG_S = 750  # 12.5 minutes: four 180 s segments and a 30 s remainder
VFR_TIMES = np.cumsum([0.0] + [0.3, 1.7, 0.9, 0.5, 1.1] * 8).round(3).tolist()


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, checkpoint):
    from clip_video_encode.cli import main

    root = tmp_path_factory.mktemp("hier")
    write_video(str(root / "long.mp4"), n_frames=LONG_S, fps=1, width=64, height=48, gop=60)
    write_video(str(root / "vfr.mp4"), n_frames=len(VFR_TIMES), frame_times=VFR_TIMES,
                width=64, height=48)  # fmt: skip
    write_video(str(root / "short.mp4"), n_frames=2, fps=1, width=64, height=48)
    listing = root / "videos.txt"
    listing.write_text("\n".join(str(root / n) for n in ("long.mp4", "vfr.mp4", "short.mp4")))
    dest = root / "ds"
    argv = [str(listing), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
            "--fps", "0.5", "--quiet", "--workers", "1", "--batch-size", "64"]  # fmt: skip
    assert main(argv) == 0
    out = root / "hier"
    assert hierarchy_main([str(dest), "--out", str(out), "--quiet"]) == 0
    samples = {m["location"].rsplit("/", 1)[-1]: (k, e, m) for k, e, m in iter_samples(str(dest))}
    return dest, out, samples


def expected_windows(times, embeddings, edges):
    """Brute force: each window's frames by comparing times, their normalised mean."""
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        last = i == len(edges) - 2
        inside = [j for j, t in enumerate(times) if lo <= t < hi or (last and t == hi)]
        if inside:
            out.append(unit(embeddings[inside]).mean(0))
        else:
            out.append(unit(embeddings[np.argmin(np.abs(np.asarray(times) - (lo + hi) / 2))]))
    return np.stack(out)


def test_clip_level_windows_are_exact(dataset):
    _, out, samples = dataset
    index = pq.read_table(out / "index.parquet").to_pylist()
    for name in ("long.mp4", "vfr.mp4", "short.mp4"):
        key, embeddings, meta = samples[name]
        times = meta["timestamps"]
        clips = np.load(out / "features" / "videos" / f"{key}.npy")
        duration = meta["duration"]
        n = math.ceil(duration / 4)
        assert clips.shape == (n, embeddings.shape[1]) and clips.dtype == np.float32
        edges = [4.0 * k for k in range(n)] + [duration]
        np.testing.assert_allclose(clips, expected_windows(times, embeddings, edges), atol=1e-5)
        row = next(r for r in index if r["key"] == key and r["level"] == "clip")
        assert row["n_features"] == n and row["end_sec"] == pytest.approx(duration)
    clips_json = json.loads((out / "annotations" / "clips.json").read_text())
    long_key = samples["long.mp4"][0]
    starts = [c["start_sec"] for c in clips_json if c["vid"] == long_key]
    assert starts == [4.0 * k for k in range(math.ceil(LONG_S / 4))]  # exact boundaries


def test_segments_and_video_level(dataset):
    _, out, samples = dataset
    index = pq.read_table(out / "index.parquet").to_pylist()
    key, embeddings, meta = samples["long.mp4"]
    segments = sorted((r for r in index if r["key"] == key and r["level"] == "segment"),
                      key=lambda r: r["segment"])  # fmt: skip
    assert [(r["start_sec"], r["end_sec"]) for r in segments] == [
        (0, 180), (180, 360), (360, 540), (540, 720), (720, LONG_S)]  # fmt: skip
    for r in segments:
        features = np.load(out / r["path"])
        assert features.shape[0] == r["n_features"] >= 45
        step = min((r["end_sec"] - r["start_sec"]) / 45, 4)
        edges = [r["start_sec"] + step * i for i in range(r["n_features"])] + [r["end_sec"]]
        np.testing.assert_allclose(features, expected_windows(meta["timestamps"], embeddings,
                                                              edges), atol=1e-5)  # fmt: skip
    video = np.load(out / "features" / "video" / f"{key}.npy")
    np.testing.assert_allclose(video[0], unit(unit(embeddings).mean(0)), atol=1e-5)
    short_key = samples["short.mp4"][0]
    short = [r for r in index if r["key"] == short_key]
    assert [r["level"] for r in short] == ["clip", "segment", "video"]
    assert short[0]["n_features"] == 1 and short[1]["n_features"] == 45
    assert short[1]["filled"] > 0  # windows without a frame took their nearest, and say so


def test_too_sparse_sampling_is_refused(dataset, tmp_path, capsys):
    import shutil

    dest, _, _ = dataset
    sparse = tmp_path / "sparse"
    shutil.copytree(dest, sparse)
    run = json.loads((sparse / "run.json").read_text())
    run["sampling"]["fps"] = 0.2
    (sparse / "run.json").write_text(json.dumps(run))
    assert hierarchy_main([str(sparse), "--out", str(tmp_path / "h"), "--quiet"]) == 2
    assert "every 5 s" in capsys.readouterr().err and not (tmp_path / "h").exists()


def test_long_video_search_ranks_segments_then_moments(tmp_path):
    """Two 10-minute videos: one has isolated single frames that match best; the other a
    sustained 10 s stretch. The frame level finds a spike; the clip and segment levels find
    the stretch, and the segment level the moment inside its segment."""
    from clip_video_encode.search import SearchIndex, rank_moments, write_index
    from clip_video_encode.search.levels import rank_clips, rank_segments

    rng = np.random.default_rng(0)
    dim = 32
    query = unit(rng.standard_normal(dim))
    background = unit(rng.standard_normal((600, dim)) - 3 * query)  # far from the query

    def frames(stretch):
        e = background.copy()
        if stretch:
            e[300:310] = unit(query + 0.4 * rng.standard_normal((10, dim)) / np.sqrt(dim))
        else:
            e[[40, 160, 420]] = query  # single frames: the best scores of all
        return e

    videos = [({"key": f"v{i}", "id": str(i), "location": None, "caption": None,
                "duration": 600.0}, frames(i == 1), np.arange(600, dtype=np.float64))
              for i in range(2)]  # fmt: skip
    write_index(str(tmp_path), iter(videos), {"model": "test"})
    index = SearchIndex(str(tmp_path))
    scores = index.scores(query)
    assert rank_moments(index, scores, 1)[0].key == "v0"  # a spike wins frame by frame
    clip = rank_clips(index, scores, 3)
    assert (
        clip[0].key == "v1"
        and 300 <= clip[0].start_s <= 308
        and clip[0].end_s - clip[0].start_s == 4
    )
    (moment, lo, hi), *_ = rank_segments(index, scores, 2)
    assert moment.key == "v1" and (lo, hi) == (180.0, 360.0)
    assert 299 <= moment.start_s <= 301 and 309 <= moment.end_s <= 311


def test_search_levels_from_the_command_line(dataset, capsys):
    from clip_video_encode.search.cli import main as search_main

    dest, _, samples = dataset
    assert search_main([str(dest), "a test pattern", "--level", "segment", "--json",
                        "--top", "3"]) == 0  # fmt: skip
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert 1 <= len(lines) <= 3
    for hit in lines:
        lo, hi = hit["segment"]
        assert lo <= hit["start_s"] <= hit["end_s"] <= hi + 4 and hi - lo <= 180
    assert search_main([str(dest), "x", "--level", "clip", "--ann"]) == 2


def test_search_levels_cut_the_windows_the_hierarchy_cuts(tmp_path, checkpoint, capsys):
    """A row windowed to [30.5, 41): the hierarchy's clip windows are 30.5-34.5, 34.5-38.5
    and 38.5-41; search's clip level returns exactly those (not windows from t = 0, nor one
    past the row's end), and its segments are the hierarchy's segments."""
    from clip_video_encode.cli import main
    from clip_video_encode.search.cli import main as search_main

    write_video(str(tmp_path / "row.mp4"), n_frames=50, fps=1, width=64, height=48)
    table = tmp_path / "rows.csv"
    table.write_text(f"location,start,end\n{tmp_path / 'row.mp4'},30.5,41\n")
    dest, out = tmp_path / "ds", tmp_path / "hier"
    assert main([str(table), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
                 "--fps", "2", "--quiet", "--workers", "1"]) == 0  # fmt: skip
    assert hierarchy_main([str(dest), "--out", str(out), "--quiet", "--segment-seconds", "6",
                           "--min-segment-features", "2"]) == 0  # fmt: skip
    clips = json.loads((out / "annotations" / "clips.json").read_text())
    assert [(c["start_sec"], c["end_sec"]) for c in clips] == [(30.5, 34.5), (34.5, 38.5),
                                                               (38.5, 41.0)]  # fmt: skip
    capsys.readouterr()
    assert search_main([str(dest), "a test pattern", "--level", "clip", "--json", "--top", "9",
                        "--per-video", "9"]) == 0  # fmt: skip
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((h["start_s"], h["end_s"]) for h in found) == [
        (c["start_sec"], c["end_sec"]) for c in clips]  # fmt: skip
    segments = json.loads((out / "annotations" / "segments.json").read_text())
    assert search_main([str(dest), "a test pattern", "--level", "segment", "--json",
                        "--top", "9", "--segment-seconds", "6"]) == 0  # fmt: skip
    found = [json.loads(line)["segment"] for line in capsys.readouterr().out.splitlines()]
    assert sorted(map(tuple, found)) == [(s["start_sec"], s["end_sec"]) for s in segments]


def test_a_window_past_the_videos_end_stops_at_the_end(videos, checkpoint, tmp_path):
    """--end (run-wide, or a row's end) past a video's end: its frames were sampled up to the
    video's end, so the span stops there. A 3 s video encoded with --end 100 had 100 one-second
    clip windows, 97 of them the last frame again ('filled'), in the hierarchy and search."""
    from clip_video_encode.cli import main
    from clip_video_encode.search.index import SearchIndex, build_index
    from clip_video_encode.search.levels import spans

    table = tmp_path / "videos.csv"
    table.write_text(f"location,end\n{videos['cfr.mp4']},\n{videos['cfr.mp4']},40\n")
    dest = tmp_path / "ds"
    assert main([str(table), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
                 "--fps", "2", "--end", "100", "--quiet", "--workers", "1"]) == 0  # fmt: skip
    out = tmp_path / "hier"
    assert hierarchy_main([str(dest), "--out", str(out), "--clip-seconds", "1", "--quiet"]) == 0
    clips = [r for r in pq.read_table(out / "index.parquet").to_pylist() if r["level"] == "clip"]
    assert [(r["start_sec"], r["end_sec"], r["n_features"], r["filled"]) for r in clips] == [
        (0.0, 3.0, 3, 0)] * 2  # fmt: skip
    lo, hi = spans(SearchIndex(build_index(str(dest))))
    assert lo.tolist() == [0.0, 0.0] and hi.tolist() == [3.0, 3.0]
