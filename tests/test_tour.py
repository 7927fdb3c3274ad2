"""The README's five-minute tour runs as written, on the demo's own dataset: the demo, then
every command of the tour's code blocks, in order, from a fresh folder (the server is
started, asked once, and stopped)."""

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                commands.append(line)
    return commands


def test_the_tour_has_its_steps():
    names = [shlex.split(c)[0] for c in tour_commands()]
    for tool in ("video-convert", "clip-video-encode", "clip-video-search", "clip-video-eval"):
        assert tool in names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_tour_runs_on_the_demo(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    demo = subprocess.run([sys.executable, "-m", "video2numpy.demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    for command in tour_commands():
        if shlex.split(command)[:2] == ["clip-video-search", "serve"]:
            port = free_port()
            server = subprocess.Popen(f"{command} --port {port}", shell=True, cwd=tmp_path,
                                      env=env, stderr=subprocess.PIPE)  # fmt: skip
            try:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
                        break
                    except OSError:
                        assert server.poll() is None, server.stderr.read().decode()
                        assert time.monotonic() < deadline, "the server did not start"
                        time.sleep(0.5)
                assert page.status == 200
            finally:
                server.terminate()
                server.wait(timeout=30)
            continue
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                              text=True)  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "demo" / "report.html").exists()
    assert (tmp_path / "demo" / "captioned" / "00000_stats.json").exists()
