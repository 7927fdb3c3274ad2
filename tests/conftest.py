"""Shared fixtures: videos generated once per test session, a local http server."""

from __future__ import annotations

import http.server
import os
import shutil
import threading
import time

import numpy as np
import pytest

# Tests never reach for a model hub; set before huggingface_hub reads its settings.
os.environ["HF_HUB_OFFLINE"] = "1"

from video2numpy.synth import write_audio_only, write_video

MODEL = "ViT-S-32"  # a small open_clip config; random weights saved once to a file
NTSC = 30000 / 1001
# Frame times of the variable-frame-rate video: irregular gaps of 20, 50 and 33 ms.
VFR_TIMES = np.cumsum([0.0] + [0.02, 0.05, 0.033] * 33 + [0.02]).round(3)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> str:
    """A random-weight MODEL checkpoint file (weights are asked for by path, as a user would)."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model(MODEL, pretrained=None)
    path = tmp_path_factory.mktemp("weights") / "vit-s-32-random.pt"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def encoder(checkpoint):
    """The test model, loaded once from the checkpoint file."""
    from clip_video_encode.models.encoder import Encoder, EncoderOptions

    return Encoder(EncoderOptions(MODEL, pretrained=checkpoint, precision="fp32", batch_size=16))


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, str]:
    """Every test video, by name. Frame i's pixels encode i (video2numpy.synth)."""
    root = tmp_path_factory.mktemp("videos")
    paths = {}

    def make(name, **kwargs):
        paths[name] = str(root / name)
        write_video(paths[name], **kwargs)

    make("cfr.mp4", n_frames=90, fps=30, width=320, height=240)
    make("ntsc.mp4", n_frames=300, fps=NTSC, width=320, height=180, audio=True)
    make("vfr.mp4", n_frames=len(VFR_TIMES), frame_times=VFR_TIMES.tolist(), width=192, height=108)
    make("vp9.webm", n_frames=60, fps=30, width=250, height=141, codec="libvpx-vp9")
    make("portrait.mp4", n_frames=30, fps=30, width=144, height=256)
    make("one_frame.mp4", n_frames=1, fps=25, width=160, height=120)
    # Long GOP-structured video: sparse sampling must seek across many keyframes.
    make("long.mp4", n_frames=1200, fps=30, width=160, height=96, gop=48)

    paths["audio_only.m4a"] = str(root / "audio_only.m4a")
    write_audio_only(paths["audio_only.m4a"])
    paths["text.mp4"] = str(root / "text.mp4")
    with open(paths["text.mp4"], "w") as f:
        f.write("this is not a video\n" * 100)
    paths["empty.mp4"] = str(root / "empty.mp4")
    open(paths["empty.mp4"], "wb").close()
    paths["truncated.mp4"] = str(root / "truncated.mp4")
    with open(paths["cfr.mp4"], "rb") as f:
        data = f.read()
    with open(paths["truncated.mp4"], "wb") as f:
        f.write(data[: len(data) // 2])
    paths["missing.mp4"] = str(root / "missing.mp4")
    return paths


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.startswith("/stall"):
            time.sleep(30)  # a server that accepts and never answers
            return
        if self.path.startswith("/slow/"):  # a real file, taking about 4 s to arrive
            with open(os.path.join(self.directory, self.path[len("/slow/") :]), "rb") as f:
                data = f.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            step = len(data) // 10 + 1
            for lo in range(0, len(data), step):
                self.wfile.write(data[lo : lo + step])
                self.wfile.flush()
                time.sleep(0.4)
            return
        if self.path.startswith("/halt"):  # some bytes, then silence
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            time.sleep(30)
            return
        if self.path.startswith("/trickle"):
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x" * 100)
                self.wfile.flush()
                time.sleep(0.2)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def http_root(videos) -> str:
    """Base URL of a local http server on 127.0.0.1 serving the test videos."""
    directory = os.path.dirname(videos["cfr.mp4"])
    handler = lambda *a, **k: _Handler(*a, directory=directory, **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium driven by Playwright (skipped where either is missing)."""
    playwright = pytest.importorskip("playwright.sync_api")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium installed (Debian: apt install chromium)")
    with playwright.sync_playwright() as p:
        args = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        browser = p.chromium.launch(executable_path=executable, args=args)
        yield browser
        browser.close()
