"""``center`` pooling is the video's middle frame by time, whatever --max-frames thins."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import MODEL

from clip_video_encode.video_models.cli import pool_main
from clip_video_encode.video_models.synthetic import write_dataset

DIM = 16


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x)


def frames(n, seed):
    """Frames that are far apart: which one was pooled is plain from the result."""
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float16)


@pytest.fixture()
def dataset(tmp_path, checkpoint):
    vfr = np.concatenate([np.arange(80) * 0.1, 8 + np.arange(1, 21) * 4.6])  # 0-7.9 s, 12.6-100 s
    videos = [
        (frames(100, 0), {"caption": "100 frames at 1 fps", "timestamps": list(range(100))}),
        (frames(3600, 1), {"caption": "an hour at 1 fps", "timestamps": list(range(3600))}),
        (frames(100, 2), {"caption": "dense then sparse", "timestamps": vfr.tolist()}),
        (frames(7, 3), {"caption": "shorter than --max-frames", "timestamps": list(range(7))}),
        (frames(1, 4), {"caption": "one frame", "timestamps": [0.0]}),
    ]
    dest = tmp_path / "ds"
    write_dataset(str(dest), iter(videos), len(videos), DIM, MODEL, checkpoint, 2)
    return dest, videos


def test_center_is_the_middle_frame_by_time(dataset, tmp_path, capsys):
    dest, videos = dataset
    out = tmp_path / "center.parquet"
    assert pool_main([str(dest), "--aggregator", "center", "--max-frames", "32",
                      "--out", str(out), "--quiet"]) == 0  # fmt: skip
    table = pq.read_table(out).to_pydict()
    assert table["caption"] == [meta["caption"] for _, meta in videos]
    # 100 frames: 49 (thinned to 32 first it was 46); an hour: 1799 s (was 1687 s, 112 s
    # off); frames dense then sparse: the one nearest 50 s, not the 50th; 7 frames: the 4th.
    expected = [49, 1799, 88, 3, 0]
    times = np.asarray(videos[2][1]["timestamps"])
    assert expected[2] == int(np.argmin(np.abs(times - (times[0] + times[-1]) / 2)))
    for (embeddings, meta), index, got in zip(videos, expected, table["embedding"], strict=True):
        np.testing.assert_allclose(got, unit(embeddings[index]), atol=1e-6, err_msg=meta["caption"])
    assert table["n_frames"] == [100, 3600, 100, 7, 1]  # the video's own frames, not the kept


def test_other_aggregators_still_see_the_thinned_frames(dataset, tmp_path):
    dest, videos = dataset
    out = tmp_path / "mean.parquet"
    assert pool_main([str(dest), "--max-frames", "32", "--out", str(out), "--quiet"]) == 0
    got = pq.read_table(out).column("embedding").to_pylist()
    embeddings = videos[0][0].astype(np.float64)
    kept = embeddings[np.linspace(0, 100, 32, endpoint=False).astype(np.int64)]
    kept /= np.linalg.norm(kept, axis=1, keepdims=True)
    np.testing.assert_allclose(got[0], unit(kept.mean(0)), atol=1e-5)
