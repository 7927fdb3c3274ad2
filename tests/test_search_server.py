"""The search server: its JSON API, its safety rules, and its page in a real browser
(headless Chromium driven by Playwright)."""

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import MODEL

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

XSS = "<script>window.pwned = 1</script> a <b>bold</b> caption"


def write_blocks_video(path, seed, seconds=6, fps=10, size=128):
    """A VP9 video whose picture changes every second: random colour blocks from
    ``(seed, second)``, so each second of each video looks like no other."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx-vp9", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b:v": "0"}
        for i in range(seconds * fps):
            rng = np.random.default_rng([seed, i // fps])
            blocks = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
            picture = np.kron(blocks, np.ones((size // 8, size // 8, 1), np.uint8))
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, checkpoint):
    from clip_video_encode.cli import main

    root = tmp_path_factory.mktemp("served")
    paths = []
    for v in range(3):
        paths.append(root / f"video{v}.webm")
        write_blocks_video(paths[-1], v)
    table = root / "videos.csv"
    captions = ["first video", XSS, "third video"]
    rows = [f'{p},"{c}"' for p, c in zip(paths, captions, strict=True)]
    table.write_text("location,caption\n" + "\n".join(rows) + "\n")
    dest = root / "ds"
    assert main([str(table), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
                 "--fps", "2", "--quiet", "--workers", "1"]) == 0  # fmt: skip
    return dest, paths


@pytest.fixture(scope="module")
def server(dataset):
    from clip_video_encode.search.server import create_app
    from clip_video_encode.search.session import SearchSession

    session = SearchSession(str(dataset[0]), device="cpu")
    app = create_app([session], max_upload=200_000)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    port = instance.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", session
    instance.should_exit = True
    thread.join(timeout=10)


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_api_answers_with_the_fields_it_promises(server):
    base, _ = server
    status, body, _ = get(f"{base}/api/search?q=first%20video&top=2")
    assert status == 200
    moments = json.loads(body)["moments"]
    assert len(moments) == 2
    for m in moments:
        assert {"key", "id", "start_s", "end_s", "score", "caption", "location"} <= set(m)
        assert m["media"]["kind"] == "file" and m["media"]["url"].startswith("/media/0/")
    assert get(f"{base}/api/search")[0] == 400
    assert get(f"{base}/api/search?q=x&top=abc")[0] == 400


def test_only_the_datasets_own_sources_are_served(server, dataset):
    base, _ = server
    status, body, headers = get(f"{base}/media/0/0", {"Range": "bytes=0-99"})
    assert status == 206 and len(body) == 100  # a range: the page can seek
    assert body == dataset[1][0].read_bytes()[:100]
    status, body, headers = get(f"{base}/thumb/0/0?t=1.0")
    assert status == 200 and body[:2] == b"\xff\xd8" and headers["content-type"] == "image/jpeg"
    for path in ("/media/0/..%2F..%2F..%2Fetc%2Fpasswd", "/media/0/%2e%2e", "/media/1/0",
                 "/media/0/99", "/media/-1/0", "/thumb/0/..%2Fx", "/etc/passwd",
                 "/media/0/0/../../../../etc/passwd"):  # fmt: skip
        status, body, _ = get(base + path)
        assert status == 404, path
        assert b"root:" not in body


def test_uploads_over_the_cap_are_refused(server):
    base, _ = server
    boundary = "xyz"
    big = b"x" * 300_000
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"'
        "\r\nContent-Type: image/png\r\n\r\n"
    )
    body = head.encode() + big + f"\r\n--{boundary}--\r\n".encode()
    kind = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    request = urllib.request.Request(f"{base}/api/search", data=body, method="POST", headers=kind)
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=60)
    assert exc.value.code == 413


def test_the_page_in_a_browser(server, dataset, browser, tmp_path):
    from PIL import Image

    from video2numpy import FrameOptions, Resize, Sampling, read_videos

    base, _ = server
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # A text query from the URL (bookmarkable): cards come back; the <script> caption is text.
    page.goto(f"{base}/?q=first%20video&top=3")
    page.wait_for_selector(".card")
    assert page.locator(".card").count() == 3
    captions = page.locator(".card .caption").all_inner_texts()
    assert XSS in captions
    assert page.evaluate("window.pwned") is None
    assert page.locator(".card b").count() == 0  # no markup from a caption
    # Typing a query updates the URL.
    page.fill("#q", "third video")
    page.click("#go")
    page.wait_for_url("**q=third+video**")
    # An image query: a frame of video 1 at 3.0 s puts video 1, at about 3 s, first.
    source = {"location": str(dataset[1][1]), "start": 3.0, "end": 3.4}
    options = FrameOptions(Sampling(num_frames=1), Resize(0, "native"))
    frames, _ = next(read_videos([source], options, workers=0))
    image = tmp_path / "query.png"
    Image.fromarray(frames[0]).save(image)
    page.set_input_files("#image", str(image))
    page.wait_for_function("() => document.getElementById('status').textContent"
                           ".includes('image query')")  # fmt: skip
    top = page.locator(".card").first
    assert top.get_attribute("data-key") == "000000001"
    start = float(top.locator(".range").inner_text().split(" - ")[0])
    assert abs(start - 3.0) <= 0.5
    # Clicking the top card plays the video from the moment's start.
    top.click()
    page.wait_for_function(
        "(start) => { const v = document.getElementById('player');"
        " return v && v.readyState >= 1 && Math.abs(v.currentTime - start) < 0.5; }",
        arg=start,
        timeout=30_000,
    )
    assert not errors, errors
    page.close()


def test_text_queries_load_the_text_tower_alone(checkpoint):
    """The query tower: no image tower at all, the padding after the text not run, and the
    same embeddings as the whole model's."""
    import torch

    from clip_video_encode.models.encoder import Encoder, EncoderOptions, TextEncoder

    text = TextEncoder(MODEL, checkpoint, "cpu")
    assert isinstance(text.model.visual, torch.nn.Identity)
    whole = Encoder(EncoderOptions(MODEL, checkpoint, "fp32", "cpu", text=True))
    queries = ["a dog", "a person riding a bike along a river on a sunny day", "x"]
    np.testing.assert_allclose(text.encode_text(queries), whole.encode_text(queries),
                               atol=1e-4, rtol=1e-3)  # fmt: skip
    assert text._short is True  # checked on the first call, then used
    np.testing.assert_allclose(text.encode_text(queries[:1]), whole.encode_text(queries[:1]),
                               atol=1e-4, rtol=1e-3)  # fmt: skip
