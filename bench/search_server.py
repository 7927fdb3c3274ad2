"""The search server's API latency: first query after start, then p50 / p95 per query,
exact and ANN, at 10k / 100k / 1M frames, and the server's memory.

Run: python bench/search_server.py [--sizes 10000,100000,1000000] [--queries 30]

Each size is a synthetic dataset in the encode format (40-frame videos wandering around their
own direction in 512 dimensions, as bench/search.py) with a random ViT-B-32 checkpoint as its
weights, served by ``clip-video-search serve`` in its own process; queries are HTTP GETs of
text (each embedded by the text tower, as a user's would be). The first ANN query builds the
faiss index and is not counted. Also per size: where a query's time goes in one process
(text tower, exact search), and one run of the one-shot ``clip-video-search`` command (wall
time and peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import numpy as np

DIM, FRAMES = 512, 40


def make(dest: str, n_frames: int, checkpoint: str) -> None:
    from clip_video_encode.video_models.synthetic import write_dataset

    if os.path.exists(os.path.join(dest, "run.json")):
        return
    rng = np.random.default_rng(0)
    n_videos = n_frames // FRAMES

    def videos():
        for _ in range(n_videos):
            centre = rng.standard_normal(DIM)
            walk = np.cumsum(rng.standard_normal((FRAMES, DIM)) * 0.15, axis=0)
            yield (centre + walk).astype(np.float16), {"caption": None}

    write_dataset(dest, videos(), n_videos, DIM, "ViT-B-32", checkpoint, 1000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> float:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        json.loads(response.read())
    return time.perf_counter() - began


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def in_process(dest: str, queries: int) -> dict:
    """Where a query's time goes, in a child process: the text tower, then the exact search."""
    code = (
        "import json, statistics, sys, time\n"
        "from clip_video_encode.search.session import SearchSession\n"
        "s = SearchSession(sys.argv[1], device='cpu')\n"
        "q = s.embed_text('warm up'); s.search(q)\n"
        "def t(f): a = time.perf_counter(); f(); return 1000 * (time.perf_counter() - a)\n"
        "n = int(sys.argv[2])\n"
        "embed = [t(lambda i=i: s.embed_text(f'a dog number {i}')) for i in range(n)]\n"
        "search = [t(lambda: s.search(q)) for _ in range(n)]\n"
        "print(json.dumps({'text_tower_p50_ms': statistics.median(embed),"
        " 'exact_search_p50_ms': statistics.median(search)}))\n"
    )  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, dest, str(queries)], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.splitlines()[-1])


def one_shot(dest: str) -> dict:
    """``clip-video-search DATASET TEXT`` once: wall time and the process's peak RSS."""
    code = (
        "import resource, subprocess, sys, time\n"
        "a = time.perf_counter()\n"
        "subprocess.run([sys.executable, '-m', 'clip_video_encode.search.cli', sys.argv[1],"
        " 'a dog on a beach', '--device', 'cpu'], check=True, capture_output=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(time.perf_counter() - a, peak)\n"
    )  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, dest], check=True, capture_output=True,
                         text=True).stdout.split()  # fmt: skip
    return {"one_shot_cli_s": float(out[0]), "one_shot_cli_peak_mib": float(out[1])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--workdir", default="bench/_search_server")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    checkpoint = os.path.join(args.workdir, "vit-b-32-random.pt")
    if not os.path.exists(checkpoint):
        import open_clip
        import torch

        torch.manual_seed(0)
        torch.save(open_clip.create_model("ViT-B-32").state_dict(), checkpoint)
    words = ["dog", "car", "beach", "kitchen", "guitar", "snow", "crowd", "river", "bike", "cat"]
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        dest = os.path.join(args.workdir, f"ds{n}")
        make(dest, n, checkpoint)
        subprocess.run([sys.executable, "-c", "import sys; from clip_video_encode.search import"
                        " build_index; build_index(sys.argv[1])", dest], check=True)  # fmt: skip
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        began = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "clip_video_encode.search.cli", "serve",
                                   dest, "--port", str(port), "--device", "cpu"],
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            while True:
                try:
                    get(f"{base}/api/search?q=a+dog&top=10")
                    break
                except OSError:
                    time.sleep(0.05)
            first = time.perf_counter() - began
            result = {"frames": n, "first_query_after_start_s": first}
            for mode in ("exact", "ann"):
                if mode == "ann":
                    get(f"{base}/api/search?q=warm+up&mode=ann")  # builds the faiss index
                times = [get(f"{base}/api/search?q=a+{words[i % 10]}+number+{i}&top=10"
                             f"&mode={mode}") for i in range(args.queries)]  # fmt: skip
                result[f"{mode}_p50_ms"] = 1000 * statistics.median(times)
                result[f"{mode}_p95_ms"] = 1000 * float(np.percentile(times, 95))
            result["server_rss_mib"] = rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait()
        result.update(in_process(dest, args.queries))
        result.update(one_shot(dest))
        rows.append(result)
        print(json.dumps(result), flush=True)
    print(f"\n{'frames':>8} {'first query':>12} {'exact p50':>10} {'exact p95':>10}"
          f" {'ANN p50':>8} {'ANN p95':>8} {'RSS MiB':>8}")  # fmt: skip
    for r in rows:
        latency = (f" {r['exact_p50_ms']:>8.1f}ms {r['exact_p95_ms']:>8.1f}ms"
                   f" {r['ann_p50_ms']:>6.1f}ms {r['ann_p95_ms']:>6.1f}ms")  # fmt: skip
        print(f"{r['frames']:>8} {r['first_query_after_start_s']:>11.1f}s{latency}"
              f" {r['server_rss_mib']:>8.0f}")  # fmt: skip
    for r in rows:
        print(f"{r['frames']:>8} frames: in-process text tower p50"
              f" {r['text_tower_p50_ms']:.1f} ms, exact search p50 {r['exact_search_p50_ms']:.1f}"
              f" ms; one-shot clip-video-search text query {r['one_shot_cli_s']:.1f} s,"
              f" peak RSS {r['one_shot_cli_peak_mib']:.0f} MiB")  # fmt: skip
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
