import contextlib
import time

import fsspec
import pytest

from video2numpy import FetchOptions, FrameOptions, Sampling, Task, parse_youtube_id, sample_video
from video2numpy.fetch import fetch_beating, location_kind
from video2numpy.status import FetchError
from video2numpy.youtube import ydl_options, youtube_format


def run(location, tmp_path, **fetch):
    options = FrameOptions(Sampling(num_frames=3), fetch=FetchOptions(**fetch))
    return list(sample_video(Task(0, location), options, str(tmp_path / "work")))


def test_http_download(http_root, tmp_path):
    chunks = run(f"{http_root}/cfr.mp4", tmp_path)
    assert chunks[-1].record["status"] == "success" and chunks[0].frames.shape[0] == 3
    assert not list((tmp_path / "work").iterdir())  # the download is removed after decoding


def drive(beating):
    """Run a heartbeat generator to its end: the heartbeats it gave, and its value."""
    beats = 0
    while True:
        try:
            next(beating)
        except StopIteration as stop:
            return beats, stop.value
        beats += 1


def test_a_download_beats_while_bytes_arrive_and_is_removed_after(http_root, videos, tmp_path):
    work = tmp_path / "work"
    with contextlib.ExitStack() as stack:
        beats, got = drive(fetch_beating(stack, f"{http_root}/slow/cfr.mp4", str(work), every=0.2))
        assert beats >= 5  # about 4 s of download
        with open(got.path, "rb") as a, open(videos["cfr.mp4"], "rb") as b:
            assert a.read() == b.read()
    assert list(work.iterdir()) == []
    with contextlib.ExitStack() as stack:  # a local file: no thread, no heartbeat
        beats, got = drive(fetch_beating(stack, videos["cfr.mp4"], str(work)))
        assert (beats, got.path) == (0, videos["cfr.mp4"])
    with contextlib.ExitStack() as stack, pytest.raises(FetchError, match="HTTP 404"):
        drive(fetch_beating(stack, f"{http_root}/nope.mp4", str(work), every=0.2))


def test_a_download_given_up_midway_is_removed_when_it_ends(http_root, tmp_path):
    work = tmp_path / "work"
    with contextlib.ExitStack() as stack:
        beating = fetch_beating(stack, f"{http_root}/slow/cfr.mp4", str(work), every=0.2)
        next(beating)  # bytes arrived
        beating.close()
    deadline = time.monotonic() + 20
    while any(work.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(work.iterdir()) == []


def test_http_404(http_root, tmp_path):
    record = run(f"{http_root}/nope.mp4", tmp_path)[-1].record
    assert record["status"] == "failed_to_fetch"
    assert "HTTP 404" in record["error_message"]


def test_unreachable_host(tmp_path):
    record = run("http://127.0.0.1:9/video.mp4", tmp_path, connect_timeout=2)[-1].record
    assert record["status"] == "failed_to_fetch" and "cannot fetch" in record["error_message"]


def test_stalling_server_times_out(http_root, tmp_path):
    began = time.monotonic()
    record = run(f"{http_root}/stall.mp4", tmp_path, read_timeout=1)[-1].record
    assert time.monotonic() - began < 10
    assert record["status"] == "failed_to_fetch" and "timed out" in record["error_message"]


def test_trickling_server_hits_the_deadline(http_root, tmp_path):
    began = time.monotonic()
    record = run(f"{http_root}/trickle.mp4", tmp_path, max_seconds=1.5)[-1].record
    assert time.monotonic() - began < 6
    assert record["status"] == "failed_to_fetch" and "took over 1.5 s" in record["error_message"]


def test_size_cap(http_root, tmp_path):
    record = run(f"{http_root}/ntsc.mp4", tmp_path, max_bytes=1000)[-1].record
    assert record["status"] == "failed_to_fetch" and "1000-byte cap" in record["error_message"]


def test_fsspec_memory(videos, tmp_path):
    with open(videos["vp9.webm"], "rb") as f:
        data = f.read()
    with fsspec.open("memory://bucket/clip.webm", "wb") as f:
        f.write(data)
    chunks = run("memory://bucket/clip.webm", tmp_path)
    assert chunks[-1].record["status"] == "success" and chunks[-1].record["codec"] == "vp9"
    record = run("memory://bucket/absent.webm", tmp_path)[-1].record
    assert record["status"] == "failed_to_fetch" and "no such file" in record["error_message"]


@pytest.mark.parametrize(
    "location, expected",
    [
        ("dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("-abc_DEF123", "-abc_DEF123"),
        ("https://www.youtube.com/watch?v=-abc_DEF123&t=10s", "-abc_DEF123"),
        ("https://m.youtube.com/watch?feature=share&v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://youtu.be/dQw4w9WgXcQ?si=xyz", "dQw4w9WgXcQ"),
        ("youtu.be/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("www.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/shorts/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/embed/dQw4w9WgXcQ?start=3", "dQw4w9WgXcQ"),
        ("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/live/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/watch?v=short", None),
        ("https://example.com/watch?v=dQw4w9WgXcQ", None),
        ("https://www.youtube.com/channel/UCabcdefghij", None),
        ("dQw4w9WgXcQX", None),
        ("video.mp4", None),
        ("s3://bucket/dQw4w9WgXcQ", None),
    ],
)
def test_youtube_ids(location, expected):
    assert parse_youtube_id(location) == expected


def test_location_kinds(videos):
    assert location_kind(videos["cfr.mp4"]) == "local"
    assert location_kind("dQw4w9WgXcQ") == "youtube"
    assert location_kind("https://example.com/a.mp4") == "http"
    assert location_kind("s3://bucket/a.mp4") == "fsspec"
    assert location_kind("relative/missing.mp4") == "local"


def test_youtube_options_fetch_a_section_at_the_size_asked():
    options = ydl_options("/tmp/x", 224, 10, 1 << 30, (5.0, 15.0))
    assert options["format"] == youtube_format(224)
    assert "[height>=224][width>=224]" in options["format"]
    sections = list(options["download_ranges"]({}, None))
    assert sections[0]["start_time"] == 5.0 and sections[0]["end_time"] == 15.0
    assert options["noplaylist"] and options["socket_timeout"] == 10
    assert "download_ranges" not in ydl_options("/tmp/x", 224, 10, 1 << 30, None)


def test_youtube_downloads_report_their_progress():
    """yt-dlp calls its progress hooks whatever ``noprogress`` says: they feed the heartbeats
    that keep a long download from being taken for a stall."""
    seen = []
    options = ydl_options("/tmp/x", 224, 10, 1 << 30, None, progress=seen.append)
    for hook in options["progress_hooks"]:
        hook({"status": "downloading", "downloaded_bytes": 1234})
        hook({"status": "downloading"})  # yt-dlp may not know the count yet
    assert seen == [1234] and options["noprogress"]
    assert "progress_hooks" not in ydl_options("/tmp/x", 224, 10, 1 << 30, None)
