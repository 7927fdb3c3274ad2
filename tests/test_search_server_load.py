"""The search server under hostile or heavy use: pictures that would decode to gigabytes are
refused from their header, slow requests run off the event loop in a bounded pool, and every
form of YouTube location the pipeline accepts plays as a YouTube embed."""

import io
import json
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest
from conftest import MODEL

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

YT = "dQw4w9WgXcQ"
LOCATIONS = [YT, f"youtube.com/watch?v={YT}", f"youtu.be/{YT}", f"www.youtube.com/shorts/{YT}",
             f"m.youtube.com/watch?v={YT}&t=5", f"https://www.youtube.com/embed/{YT}",
             "-_abcdefghi", "http://example.com/v.mp4", "s3://bucket/v.mp4"]  # fmt: skip


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def session(tmp_path_factory, checkpoint):
    """A dataset written from ready-made frames (no video to decode), one row per location."""
    from clip_video_encode.models.encoder import TextEncoder
    from clip_video_encode.search.session import SearchSession
    from clip_video_encode.video_models.synthetic import write_dataset

    dim = TextEncoder(MODEL, checkpoint, "cpu").encode_text(["x"]).shape[1]
    rng = np.random.default_rng(0)
    rows = [(unit(rng.standard_normal((3, dim))).astype(np.float16),
             {"caption": f"row {i}", "location": loc})
            for i, loc in enumerate(LOCATIONS)]  # fmt: skip
    dest = tmp_path_factory.mktemp("served") / "ds"
    write_dataset(str(dest), iter(rows), len(rows), dim, MODEL, checkpoint, 4)
    return SearchSession(str(dest), device="cpu")


def start(app):
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture
def serve(session):
    running = []

    def make(**kwargs):
        from clip_video_encode.search.server import create_app

        base, server, thread = start(create_app([session], **kwargs))
        running.append((server, thread))
        return base

    yield make
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


def get(url, data=None, headers=None, timeout=60):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def upload(base, data, name="q.png"):
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"'
            f"\r\nContent-Type: image/png\r\n\r\n").encode() + data  # fmt: skip
    body += f"\r\n--{boundary}--\r\n".encode()
    kind = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return get(f"{base}/api/search", body, kind)


def png_header(width, height):
    """A PNG that says it is ``width`` x ``height`` (8-bit grey) and holds one row of data: a
    few hundred bytes that would decode to ``width * height`` bytes and more."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pictures_too_large_to_decode_are_refused_from_their_header(serve):
    from PIL import Image

    base = serve(max_upload=2_000_000)
    for width, height in ((15000, 15000), (12000, 12000)):  # 225 and 144 megapixels
        data = png_header(width, height)
        assert len(data) < 20_000
        began = time.monotonic()
        status, body = upload(base, data)
        assert status == 413, body
        assert "megapixels" in json.loads(body)["error"]
        assert time.monotonic() - began < 5  # not decoded
    small = io.BytesIO()
    Image.fromarray(np.full((64, 80, 3), 200, np.uint8)).save(small, format="PNG")
    status, body = upload(base, small.getvalue())
    assert status == 200 and len(json.loads(body)["moments"]) > 0
    # A lower limit of the server's own: refused at 1200 x 1000, said in the message.
    tight = serve(max_upload=2_000_000, max_pixels=1_000_000)
    status, body = upload(tight, png_header(1200, 1000))
    assert status == 413 and "1200 x 1000" in json.loads(body)["error"]
    assert upload(tight, small.getvalue())[0] == 200


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_command_line_refuses_them_too(session, tmp_path, capsys):
    from clip_video_encode.search.cli import main

    for size in (15000, 12000):
        (tmp_path / "big.png").write_bytes(png_header(size, size))
        assert main([session.dataset, str(tmp_path / "big.png")]) == 2
        assert "megapixels" in capsys.readouterr().err


def test_a_slow_query_does_not_hold_up_the_page_and_queries_run_bounded(serve, session,
                                                                       monkeypatch):  # fmt: skip
    lock = threading.Lock()
    state = {"now": 0, "most": 0, "delay": 2.0}
    real = session.search

    def slow(*args, **kwargs):  # the scoring made slow, as over a large index
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(state["delay"])
        with lock:
            state["now"] -= 1
        return real(*args, **kwargs)

    monkeypatch.setattr(session, "search", slow)
    base = serve()
    worker = threading.Thread(target=get, args=(f"{base}/api/search?q=slow",))
    worker.start()
    time.sleep(0.2)
    began = time.monotonic()
    status, _ = get(f"{base}/")
    assert status == 200 and time.monotonic() - began < 0.5
    worker.join()

    base = serve(concurrency=2)
    state["delay"], state["most"] = 1.0, 0
    results = []
    began = time.monotonic()
    threads = [threading.Thread(target=lambda i=i: results.append(get(f"{base}/api/search?q={i}")))
               for i in range(4)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    assert [status for status, _ in results] == [200] * 4
    assert state["most"] == 2  # two at a time: in parallel, and no more
    assert 1.9 <= elapsed < 3.5, elapsed


def test_every_youtube_form_plays_as_an_embed(serve, tmp_path, monkeypatch):
    base = serve()
    status, body = get(f"{base}/api/search?q=row&top=50")
    assert status == 200
    media = {m["location"]: m["media"] for m in json.loads(body)["moments"]}
    assert set(media) == set(LOCATIONS)
    for location in LOCATIONS[:6]:
        assert media[location] == {"kind": "youtube", "id": YT}, location
    assert media["-_abcdefghi"] == {"kind": "youtube", "id": "-_abcdefghi"}
    assert media["http://example.com/v.mp4"] == {"kind": "url", "url": "http://example.com/v.mp4"}
    assert media["s3://bucket/v.mp4"] == {"kind": "none"}
    for m in json.loads(body)["moments"]:  # and none of them is looked up as a file
        assert get(f"{base}/media/0/{m['video']}")[0] == 404


def test_a_local_file_named_like_a_youtube_id_is_a_file(tmp_path, monkeypatch):
    """The pipeline's rule (video2numpy.fetch.location_kind): a location that exists on disk
    is a path, even when it looks like an id."""
    from clip_video_encode.search.server import _media, local_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / YT).write_bytes(b"video")
    assert _media(0, 3, YT) == {"kind": "file", "url": "/media/0/3"}
    assert local_path(YT) == YT
    assert local_path(f"file://{tmp_path}/{YT}") == f"{tmp_path}/{YT}"
    assert local_path(f"youtu.be/{YT}") is None and local_path("abcdefghijk") is None
