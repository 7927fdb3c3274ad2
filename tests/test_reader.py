"""The worker pool: many videos in parallel, bad ones isolated, stalls cut off."""

import multiprocessing
import time

import numpy as np

from video2numpy import FrameOptions, Resize, Sampling, read_videos, stream_videos
from video2numpy.synth import frame_index


def test_pool_decodes_all_and_isolates_bad_inputs(videos):
    names = ["cfr.mp4", "missing.mp4", "vp9.webm", "text.mp4", "ntsc.mp4", "audio_only.m4a"]
    sources = [videos[n] for n in names] + [{"location": videos["cfr.mp4"], "start": 1, "end": 2}]
    options = FrameOptions(Sampling(fps=2), Resize(64))
    results = {r["index"]: (f, r) for f, r in read_videos(sources, options, workers=2)}
    assert sorted(results) == list(range(7))
    statuses = [results[i][1]["status"] for i in range(7)]
    assert statuses == [
        "success",
        "failed_to_fetch",
        "success",
        "failed_to_decode",
        "success",
        "failed_to_decode",
        "success",
    ]
    frames, record = results[6]
    assert [frame_index(f) for f in frames] == [30, 45]  # 1.0 s and 1.5 s at 30 fps
    assert record["timestamps"] == [1.0, 1.5] and frames.shape == (2, 64, 64, 3)
    assert results[1][0].shape[0] == 0


def test_in_process_and_pool_agree(videos):
    sources = [videos["cfr.mp4"], videos["vfr.mp4"]]
    options = FrameOptions(Sampling(num_frames=4), Resize(32))
    a = {r["index"]: f for f, r in read_videos(sources, options, workers=0)}
    b = {r["index"]: f for f, r in read_videos(sources, options, workers=2)}
    for i in a:
        assert np.array_equal(a[i], b[i])


def test_chunks_stream_in_bounded_pieces(videos):
    options = FrameOptions(Sampling(), Resize(32), chunk_frames=50)
    chunks = list(stream_videos([videos["long.mp4"]], options, workers=1))
    assert max(len(c.frames) for c in chunks) <= 50
    assert sum(len(c.frames) for c in chunks) == 1200
    assert chunks[-1].record["n_frames"] == 1200


def test_stalled_worker_is_stopped_and_replaced(http_root, videos):
    # The fetch would wait 30 s for the stalling server; the pool gives up after 2 s.
    from video2numpy import FetchOptions

    options = FrameOptions(Sampling(num_frames=2), Resize(32), fetch=FetchOptions(read_timeout=60))
    sources = [f"{http_root}/stall.mp4", videos["cfr.mp4"], videos["vp9.webm"]]
    began = time.monotonic()
    results = {r["index"]: r for _, r in read_videos(sources, options, workers=1, timeout=2)}
    assert time.monotonic() - began < 20
    assert (
        results[0]["status"] == "timeout" and "no progress for 2 s" in results[0]["error_message"]
    )
    assert results[1]["status"] == results[2]["status"] == "success"


def test_stopping_early_stops_workers(videos):
    stream = stream_videos(
        [videos["long.mp4"]] * 4,
        FrameOptions(Resize=None)
        if False
        else FrameOptions(Sampling(), Resize(32), chunk_frames=10),
        workers=2,
    )
    first = next(stream)
    assert len(first.frames) == 10
    assert len(multiprocessing.active_children()) == 2
    stream.close()  # must not hang, and must not leave processes behind
    assert multiprocessing.active_children() == []


def test_timeout_holds_while_other_workers_stream(http_root, videos):
    """A worker stuck on a download is stopped about ``timeout`` seconds in, even while the
    other worker sends chunks all the time to a consumer that takes its time."""
    from video2numpy import FetchOptions

    options = FrameOptions(
        Sampling(), Resize(32), chunk_frames=4, fetch=FetchOptions(read_timeout=60)
    )
    sources = [f"{http_root}/stall.mp4", videos["long.mp4"]]
    began = time.monotonic()
    events = []
    for chunk in stream_videos(sources, options, workers=2, timeout=1.5):
        if chunk.record is not None:
            events.append((chunk.index, chunk.record["status"], time.monotonic() - began))
        time.sleep(0.02)  # 300 chunks of the long video: about 6 s of consuming
    assert [e[:2] for e in events] == [(0, "timeout"), (1, "success")]
    assert events[0][2] < 5.0, f"the stalled video was stopped only after {events[0][2]:.1f} s"
    assert events[1][2] - events[0][2] > 1.0  # the long video was still streaming then


def test_a_download_longer_than_the_stall_limit_is_not_a_stall(http_root, videos):
    """An hour-long video may take longer to download than ``timeout``: while bytes arrive the
    worker says so, and only silence counts. Here 4 s of download under a 1.5 s limit."""
    options = FrameOptions(Sampling(fps=2), Resize(32))
    sources = [f"{http_root}/slow/cfr.mp4", f"{http_root}/halt.mp4"]
    began = time.monotonic()
    got = {r["index"]: (f, r) for f, r in read_videos(sources, options, workers=2, timeout=1.5)}
    assert time.monotonic() - began > 3.5  # the download did take longer than the limit
    frames, record = got[0]
    assert record["status"] == "success", record["error_message"]
    local, _ = next(read_videos([videos["cfr.mp4"]], options, workers=0))
    assert np.array_equal(frames, local)
    assert got[1][1]["status"] == "timeout"  # bytes, then silence: a stall


def test_killed_worker_leaves_no_partial_download(http_root, videos, tmp_path, monkeypatch):
    """The watchdog SIGKILLs a worker mid-download; its scratch folder goes with it."""
    import tempfile

    from video2numpy import FetchOptions

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # for the worker processes too
    options = FrameOptions(Sampling(num_frames=2), Resize(32), fetch=FetchOptions(read_timeout=60))
    sources = [f"{http_root}/halt.mp4", videos["cfr.mp4"]]
    for chunk in stream_videos(sources, options, workers=1, timeout=1.5):
        if chunk.record is not None and chunk.index == 0:
            assert chunk.record["status"] == "timeout"
    assert list(tmp_path.iterdir()) == []  # every worker's folder removed, the killed one too


def test_a_worker_that_died_while_idle_loses_no_video(videos):
    """A worker killed between videos (out of memory, a stray kill): the next video goes to a
    fresh worker instead of ending the run with a broken pipe."""
    from video2numpy.reader import _Pool
    from video2numpy.video import Task

    options = FrameOptions(Sampling(num_frames=2), Resize(32))
    pool = _Pool(1, options)
    try:
        pool.workers[0].process.kill()
        pool.workers[0].process.join()
        tasks = iter([Task(0, videos["cfr.mp4"]), Task(1, videos["vfr.mp4"])])
        records = [c.record for c in pool.run(tasks, 60) if c.record is not None]
    finally:
        pool.close()
    assert [r["status"] for r in records] == ["success", "success"]
