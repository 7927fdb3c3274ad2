"""clip-video-caption killed with SIGKILL mid-run, then rerun: the table is byte for byte the
one an uninterrupted run writes (slow: two processes load transformers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("transformers")

from clip_video_encode.caption.synthetic import save_random_captioner  # noqa: E402
from clip_video_encode.caption.table import parts_path  # noqa: E402
from video2numpy.synth import write_video  # noqa: E402


def _cli(*args: str) -> list[str]:
    code = "import sys; from clip_video_encode.caption.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, *args]


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_table(tmp_path):
    tiny = save_random_captioner(str(tmp_path / "tiny"))
    videos = []
    for i in range(4):
        videos.append(str(tmp_path / f"v{i}.mp4"))
        write_video(videos[-1], n_frames=60 + 30 * i, fps=30, width=64, height=48)
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"location": videos * 6}), src)
    common = ["--model", tiny, "--samples-per-shard", "2", "--batch-size", "1", "--quiet",
              "--per", "window", "--window-seconds", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole.parquet"
    assert subprocess.run(_cli(str(src), "--out", str(whole), *common), env=env).returncode == 0

    out = tmp_path / "killed.parquet"
    parts = parts_path(str(out))
    run = subprocess.Popen(_cli(str(src), "--out", str(out), *common), env=env)
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None:
        if os.path.isdir(parts) and any(n.endswith("_stats.json") for n in os.listdir(parts)):
            break
        time.sleep(0.05)
    time.sleep(0.3)  # into the next shard
    assert run.poll() is None, "the run ended before it could be killed"
    run.send_signal(signal.SIGKILL)
    run.wait()
    done = [n for n in os.listdir(parts) if n.endswith("_stats.json")]
    assert 0 < len(done) < 12 and not out.exists()

    assert subprocess.run(_cli(str(src), "--out", str(out), *common), env=env).returncode == 0
    assert out.read_bytes() == whole.read_bytes()
    assert not [n for n in os.listdir(parts) if n.endswith(".partial")]
