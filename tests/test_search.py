"""clip-video-search: moments from similarity curves, exact ranking, queries by image and text."""

import json

import numpy as np
import pytest

from clip_video_encode.search import (
    MomentOptions,
    SearchIndex,
    build_index,
    iter_top_frames,
    moments_of,
    search,
)

torch = pytest.importorskip("torch")


def test_moments_from_hand_made_curves():
    times = np.arange(20) * 0.5  # 2 frames per second
    curve = np.zeros(20)
    curve[[3, 4, 5]] = [0.8, 0.9, 0.8]  # 1.5-2.5 s
    curve[[15, 16]] = [0.7, 0.75]  # 7.5-8.0 s
    moments = moments_of(times, curve, MomentOptions(threshold=0.5, min_gap=1.0))
    assert moments == [(1.5, 3.0, 0.9, 2.0), (7.5, 8.5, 0.75, 8.0)]
    # Closer than the gap: one moment spanning both.
    merged = moments_of(times, curve, MomentOptions(threshold=0.5, min_gap=6.0))
    assert merged == [(1.5, 8.5, 0.9, 2.0)]
    # A higher threshold keeps only the peak; a one-frame moment lasts one frame step.
    assert moments_of(times, curve, MomentOptions(threshold=1.0)) == [(2.0, 2.5, 0.9, 2.0)]
    # Smoothing: a one-frame spike loses to a sustained bump.
    spike = np.zeros(20)
    spike[2] = 1.0
    spike[10:16] = 0.6
    assert moments_of(times, spike, MomentOptions(threshold=0.9))[0][3] == 1.0
    smoothed = moments_of(times, spike, MomentOptions(threshold=0.9, smooth=3))
    assert 5.0 <= smoothed[0][3] <= 7.5
    assert moments_of([], [], MomentOptions()) == []


def write_blocks(path, seed, n_frames=60, fps=30):
    """A video of random 8x8 colour blocks, new ones every frame: no two frames alike."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = 128
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for _ in range(n_frames):
            blocks = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            image = np.kron(blocks, np.ones((16, 16, 1), np.uint8))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, checkpoint):
    from conftest import MODEL

    from clip_video_encode.cli import main

    root = tmp_path_factory.mktemp("search")
    paths = []
    for i in range(5):
        paths.append(str(root / f"blocks{i}.mp4"))
        write_blocks(paths[-1], seed=i)
    table = root / "videos.csv"
    table.write_text("location,id,caption\n" + "".join(
        f"{p},vid{i},video number {i}\n" for i, p in enumerate(paths)))  # fmt: skip
    dest = root / "ds"
    assert main([str(table), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
                 "--fps", "2", "--quiet", "--samples-per-shard", "2"]) == 0  # fmt: skip
    return str(dest), paths


def all_frames(dest):
    from clip_video_encode.read import iter_samples

    rows = []
    for key, embeddings, meta in iter_samples(dest):
        e = embeddings.astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        rows += [(key, t, v) for t, v in zip(meta["timestamps"], e, strict=True)]
    return rows


def test_image_query_finds_its_video_and_second(dataset, tmp_path, capsys):
    from PIL import Image

    from clip_video_encode.search.cli import main
    from video2numpy import FrameOptions, Sampling, read_videos

    dest, paths = dataset
    frames, record = next(read_videos([paths[3]], FrameOptions(Sampling(fps=2)), workers=0))
    image = tmp_path / "query.png"
    Image.fromarray(frames[3]).save(image)  # the frame at 1.5 s of video 3
    assert record["timestamps"][3] == pytest.approx(1.5)
    assert main([dest, str(image), "--json", "--top", "3"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert hits[0]["id"] == "vid3" and hits[0]["peak_s"] == pytest.approx(1.5)
    assert hits[0]["start_s"] <= 1.5 < hits[0]["end_s"]
    assert hits[0]["score"] > 0.999 and hits[0]["caption"] == "video number 3"
    assert len({h["key"] for h in hits}) == 3  # one moment per video by default


def test_ranking_equals_brute_force_cosine(dataset):
    from conftest import MODEL

    from clip_video_encode.models.encoder import Encoder, EncoderOptions

    dest, _ = dataset
    index = SearchIndex(build_index(dest))
    rows = all_frames(dest)
    assert len(index) == len(rows) == 5 * 4  # 2 s videos at 2 fps
    run = json.load(open(f"{dest}/run.json"))
    encoder = Encoder(EncoderOptions(MODEL, run["pretrained"], "fp32", text=True))
    query = encoder.encode_text(["colourful squares"])[0]
    q = query / np.linalg.norm(query)
    brute = sorted(((float(v @ q), key, t) for key, t, v in rows), reverse=True)
    ours = list(iter_top_frames(index, query, k=10))
    for (row, score), (b_score, b_key, b_time) in zip(ours, brute[:10], strict=True):
        video = index.videos[index.frame_video[row]]
        assert (video["key"], index.frame_time[row]) == (b_key, pytest.approx(b_time))
        assert score == pytest.approx(b_score, abs=2e-3)  # float16 index
    # Videos ranked by their best frame, as brute force ranks them.
    best = {}
    for score, key, _ in brute:
        best.setdefault(key, score)
    moments = search(index, query, top=5, options=MomentOptions(threshold=1.0))
    assert [m.key for m in moments] == list(best)
    # The index is reused while the shards stay the same.
    stamp = json.load(open(f"{dest}/_search/index.json"))
    assert build_index(dest) == f"{dest}/_search" and stamp["frames"] == 20


def test_random_weight_datasets_cannot_be_queried(tmp_path, capsys):
    from clip_video_encode.search.cli import main

    dest = tmp_path / "ds"
    dest.mkdir()
    (dest / "run.json").write_text(json.dumps({"model": "ViT-S-32", "pretrained": "none"}))
    assert main([str(dest), "a dog"]) == 2
    assert "random weights" in capsys.readouterr().err


def test_html_report_has_thumbnails_and_curves(dataset, tmp_path, capsys):
    import base64
    import io
    import re

    from PIL import Image

    from clip_video_encode.search.cli import main
    from clip_video_encode.search.report import thumbnail
    from video2numpy import FrameOptions, Resize, Sampling, read_videos

    dest, paths = dataset
    frames, _ = next(read_videos([paths[1]], FrameOptions(Sampling(fps=2)), workers=0))
    image = tmp_path / "query.png"
    Image.fromarray(frames[2]).save(image)  # video 1 at 1.0 s
    page = tmp_path / "report.html"
    assert main([dest, str(image), "--top", "3", "--html", str(page)]) == 0
    text = page.read_text()
    assert text.count('class="hit"') == 3 and text.count("<polyline") == 3
    uris = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', text)
    assert len(uris) == 3
    # The first thumbnail is the source video's frame at the best moment's time.
    thumb = np.asarray(Image.open(io.BytesIO(base64.b64decode(uris[0]))).convert("RGB"))
    native, _ = next(read_videos([paths[1]], FrameOptions(Sampling(fps=2), Resize(0, "native")),
                                 workers=0))  # fmt: skip
    assert thumb.shape == native[2].shape
    assert np.abs(thumb.astype(int) - native[2].astype(int)).mean() < 12
    assert thumbnail("/no/such/video.mp4", 1.0) is None
    capsys.readouterr()


def colourful_pixels(png) -> int:
    from PIL import Image

    hsv = np.asarray(Image.open(png).convert("HSV")).astype(int)
    return int(((hsv[..., 1] > 128) & (hsv[..., 2] > 64)).sum())


def test_html_report_renders_in_headless_chromium(dataset, tmp_path):
    import shutil
    import subprocess

    from clip_video_encode.search import frame_scores, rank_moments
    from clip_video_encode.search.report import write_report

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's chromium package)")
    dest, _ = dataset
    index = SearchIndex(build_index(dest))
    query = np.asarray(index.embeddings[5], np.float32)
    scores = frame_scores(index, query)
    moments = rank_moments(index, scores, top=3)
    counts = {}
    for with_thumbnails in (True, False):
        page = tmp_path / f"report_{with_thumbnails}.html"
        write_report(str(page), index, moments, scores, "frame 5", thumbnails=with_thumbnails)
        shot = tmp_path / f"shot_{with_thumbnails}.png"
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--screenshot={shot}", "--window-size=1000,700", page.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        counts[with_thumbnails] = colourful_pixels(shot)
    # The thumbnails (random colour blocks) loaded and were painted: thousands of colourful
    # pixels that the page without them does not have.
    assert counts[True] > counts[False] + 20000, counts


def test_ann_index_agrees_with_exact_search(dataset):
    pytest.importorskip("faiss")
    import os

    from clip_video_encode.search import ANN_FILE, build_ann, rank_moments_ann

    dest, _ = dataset
    index = SearchIndex(build_index(dest))
    ann = build_ann(index)
    saved = index.path(ANN_FILE)
    stamp = os.path.getmtime(saved)
    assert build_ann(index).ntotal == len(index) and os.path.getmtime(saved) == stamp  # reused
    for row in (0, 7, 13):
        query = np.asarray(index.embeddings[row], np.float32)
        exact = search(index, query, top=3)
        approx = rank_moments_ann(index, ann, query, top=3)
        assert [m.key for m in approx] == [m.key for m in exact]
        assert [m.peak_s for m in approx] == [m.peak_s for m in exact]
        assert approx[0].score == pytest.approx(exact[0].score, abs=1e-6)


def test_remote_dataset_indexes_into_a_local_cache(
    dataset, tmp_path, monkeypatch, capsys, checkpoint
):
    from conftest import MODEL
    from PIL import Image

    from clip_video_encode.cli import main as encode
    from clip_video_encode.search.cli import main
    from video2numpy import FrameOptions, Sampling, read_videos

    _, paths = dataset
    table = tmp_path / "two.csv"
    table.write_text("location,id\n" + "".join(f"{p},v{i}\n" for i, p in enumerate(paths[:2])))
    url = "memory://search-remote/ds"
    assert encode([str(table), "--dest", url, "--model", MODEL, "--pretrained", checkpoint,
                   "--fps", "2", "--quiet"]) == 0  # fmt: skip
    frames, _ = next(read_videos([paths[1]], FrameOptions(Sampling(fps=2)), workers=0))
    image = tmp_path / "q.png"
    Image.fromarray(frames[1]).save(image)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main([url, str(image), "--json", "--top", "1"]) == 0
    hit = json.loads(capsys.readouterr().out.splitlines()[0])
    assert hit["id"] == "v1" and hit["peak_s"] == pytest.approx(0.5)
    cached = list((tmp_path / "cache" / "clip-video-search").iterdir())
    assert len(cached) == 1 and (cached[0] / "index.json").exists()
