"""clip-video-mix at scale: source deduplication of 10 million table rows, and content
deduplication of 1 million pooled 512-d embeddings, with its recall against brute force.

Run: python bench/mix.py [--rows 10000000] [--embeddings 1000000] [--subset 30000]
                         [--only source|content]

Source: four parquet tables shaped like converter output are generated first (not timed):
``k700`` (4M Kinetics-style rows over 2.5M YouTube videos: ``id`` ``<ytid>_<start>_<end>``,
watch URL, ``youtube_id``, 10 s windows), ``k600`` (3M rows, 40% on k700's videos, half of those
at k700's windows), ``webvid`` (3M rows of plain http URLs), and an evaluation table
(200k rows, half on k700's videos). A fresh process then runs ``clip-video-mix k700 k600
webvid --exclude eval --dry-run`` (read, identify, exclude, deduplicate, write the report and
the pairs file) and, in another, ``--table-only`` (the same, then the clean 10M-row table
written). Reported: wall time and the process's peak RSS (VmHWM).

Content: a fresh process draws 1M unit vectors in 512 dimensions shaped like CLIP video
embeddings (2000 topics, cosine about 0.73 within a topic, about 0 across; 5% of rows are
copies of an earlier row at cosine about 0.99), holds them as float16 (1 GB, as a mix holds
pooled embeddings), and runs the SemDeDup step (k-means with one cluster per 5000 rows, then
pairwise cosine within each cluster, eps 0.05). Reported: time of the step, peak RSS of the
process, and the share of the planted copies found. Recall against brute force: on a
``--subset`` of rows from the same generator, the rows removed with k clusters (several k,
including one per 5000 rows) against those removed with one cluster, which is brute force
exactly (tests/test_mix_identity.py). Reading the pooled embeddings from a dataset's tars is
not part of this figure (it is I/O: the tars' bytes once); ``--pool`` measures that rate on a
synthetic dataset written in the encoder's format.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", "u1")


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


# -- source ------------------------------------------------------------------------------------


def youtube_ids(n: int, rng):
    """``n`` random 11-character YouTube-style ids, as an arrow string array."""
    import pyarrow as pa

    codes = ALPHABET[rng.integers(0, len(ALPHABET), (n, 11))]
    data = codes.tobytes()
    offsets = np.arange(0, 11 * n + 1, 11, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def kinetics_table(videos, video_index, starts, split: str):
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = videos.take(pa.array(video_index))
    start = pa.array(starts.astype(np.float64))
    end = pa.array((starts + 10).astype(np.float64))

    def padded(x):
        return pc.utf8_lpad(pc.cast(pa.array(x.astype(np.int64)), pa.string()), 6, "0")

    clip = pc.binary_join_element_wise(ids, padded(starts), padded(starts + 10), "_")
    labels = pa.array(np.char.add("label ", (video_index % 700).astype(str)))
    return pa.table({
        "id": clip, "location": pc.binary_join_element_wise(
            "https://www.youtube.com/watch?v=", ids, ""),
        "caption": labels, "start": start, "end": end,
        "split": pa.array(np.full(len(video_index), split)), "label": labels, "youtube_id": ids,
    })  # fmt: skip


def write_source_tables(folder: str, rows: int, seed: int = 0) -> dict[str, str]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_a, n_b = int(rows * 0.4), int(rows * 0.3)
    n_c = rows - n_a - n_b
    videos_a = youtube_ids(int(n_a * 0.625), rng)
    a_video = np.concatenate(
        [np.arange(len(videos_a)), rng.integers(0, len(videos_a), n_a - len(videos_a))]
    )
    a_start = rng.integers(0, 300, n_a)
    paths = {}
    paths["k700"] = os.path.join(folder, "k700.parquet")
    pq.write_table(kinetics_table(videos_a, a_video, a_start, "train"), paths["k700"])
    shared = int(n_b * 0.4)
    pick = rng.integers(0, n_a, shared)
    b_start = np.where(np.arange(shared) % 2 == 0, a_start[pick], a_start[pick] + 400)
    own = youtube_ids(n_b - shared, rng)
    videos_b = pa.concat_arrays([videos_a, own])
    b_video = np.concatenate([a_video[pick], len(videos_a) + np.arange(n_b - shared)])
    b_start = np.concatenate([b_start, rng.integers(0, 300, n_b - shared)])
    paths["k600"] = os.path.join(folder, "k600.parquet")
    pq.write_table(kinetics_table(videos_b, b_video, b_start, "train"), paths["k600"])
    numbers = pc.cast(pa.array(rng.integers(0, 10**9, n_c)), pa.string())
    location = pc.binary_join_element_wise("https://cdn.example.com/videos/", numbers, ".mp4", "")
    paths["webvid"] = os.path.join(folder, "webvid.parquet")
    webvid = pa.table({"id": numbers, "location": location,
                       "caption": pa.array(np.full(n_c, "a video")),
                       "split": pa.array(np.full(n_c, "train"))})  # fmt: skip
    pq.write_table(webvid, paths["webvid"])
    n_e = max(rows // 50, 1)
    half = n_e // 2
    e_video = np.concatenate([a_video[rng.integers(0, n_a, half)],
                              len(videos_a) + rng.integers(0, 10**6, n_e - half)])  # fmt: skip
    videos_e = pa.concat_arrays([videos_a, youtube_ids(10**6, rng)])
    paths["eval"] = os.path.join(folder, "eval.parquet")
    pq.write_table(kinetics_table(videos_e, e_video, rng.integers(0, 300, n_e), "val"),
                   paths["eval"])  # fmt: skip
    return paths


def source_child(folder: str, mode: str) -> dict:
    from clip_video_encode.mix.cli import main

    paths = json.load(open(os.path.join(folder, "paths.json")))
    dest = os.path.join(folder, f"out-{mode}")
    began = time.perf_counter()
    code = main(
        [
            paths["k700"],
            paths["k600"],
            paths["webvid"],
            "--exclude",
            paths["eval"],
            "--dest",
            dest,
            "--quiet",
            "--dry-run" if mode == "dry" else "--table-only",
        ]
    )
    seconds = time.perf_counter() - began
    where = os.path.join(dest, "_dry_run" if mode == "dry" else "")
    report = json.load(open(os.path.join(where, "mix_report.json")))
    return {"code": code, "seconds": round(seconds, 1), "peak_mb": round(_peak_mb()),
            "total": report["total"]}  # fmt: skip


# -- content -----------------------------------------------------------------------------------


def embeddings(n: int, dim: int = 512, topics: int | None = None, copies: float = 0.05,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """float16 unit rows and, per row, the row it copies (-1: none); built in blocks."""
    rng = np.random.default_rng(seed)
    topics = topics or max(1, n // 500)
    centres = rng.standard_normal((topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float16)
    original = np.full(n, -1, np.int64)
    block = 65536
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        noise = rng.standard_normal((hi - lo, dim)).astype(np.float32)
        noise *= 0.6 / np.linalg.norm(noise, axis=1, keepdims=True)
        x = centres[rng.integers(0, topics, hi - lo)] + noise
        is_copy = (rng.random(hi - lo) < copies) & (np.arange(lo, hi) > 0)
        sources = (rng.random(hi - lo) * np.arange(lo, hi)).astype(np.int64)
        for i in np.flatnonzero(is_copy):  # a copy of an earlier row, slightly changed
            s = sources[i]
            base = out[s].astype(np.float32) if s < lo else x[s - lo] / np.linalg.norm(x[s - lo])
            jitter = rng.standard_normal(dim).astype(np.float32)
            x[i] = base + 0.15 * jitter / np.linalg.norm(jitter)
            original[lo + i] = s
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[lo:hi] = x
    return out, original


def content_child(n: int, eps: float) -> dict:
    from clip_video_encode.mix.content import deduplicate

    x, original = embeddings(n)
    began = time.perf_counter()
    k = max(1, n // 5000)
    result = deduplicate(x, np.arange(n), eps, k)
    seconds = time.perf_counter() - began
    planted = original >= 0
    found = (result.partner >= 0) & planted
    return {"rows": n, "clusters": k, "seconds": round(seconds, 1),
            "peak_mb": round(_peak_mb()), "removed": int((result.partner >= 0).sum()),
            "planted": int(planted.sum()),
            "planted_found": round(float(found.sum() / max(planted.sum(), 1)), 4)}  # fmt: skip


def recall_child(n: int, eps: float) -> dict:
    from clip_video_encode.mix.content import deduplicate

    x, _ = embeddings(n, seed=1)
    rank = np.arange(n)
    began = time.perf_counter()
    exact = deduplicate(x, rank, eps, 1).partner >= 0
    out = {"rows": n, "brute_force_s": round(time.perf_counter() - began, 1),
           "brute_force_removed": int(exact.sum()), "recall": {}}  # fmt: skip
    for k in sorted({2, max(1, n // 5000), max(1, n // 1000), max(1, n // 200)}):
        began = time.perf_counter()
        got = deduplicate(x, rank, eps, k).partner >= 0
        out["recall"][k] = {
            "recall": round(float((got & exact).sum() / max(exact.sum(), 1)), 4),
            "extra": int((got & ~exact).sum()),
            "seconds": round(time.perf_counter() - began, 1),
        }
    return out


def pool_child(n: int) -> dict:
    """Pooled embeddings read from a synthetic dataset: the rate of the read step."""
    from clip_video_encode.mix.inputs import open_input, pooled_embeddings, read_rows
    from clip_video_encode.video_models.synthetic import write_dataset

    folder = tempfile.mkdtemp(prefix="mix-pool-")
    rng = np.random.default_rng(0)
    rows = ((rng.standard_normal((16, 512)).astype(np.float16), {"caption": "x"})
            for _ in range(n))  # fmt: skip
    write_dataset(folder, rows, n, 512, "ViT-B-32", "synthetic")
    item = open_input(folder)
    table = read_rows(item)
    began = time.perf_counter()
    pooled_embeddings(item, table.column("_shard").to_numpy(), table.column("_row").to_numpy())
    seconds = time.perf_counter() - began
    return {"videos": n, "frames_each": 16, "seconds": round(seconds, 1),
            "videos_per_s": round(n / seconds)}  # fmt: skip


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--embeddings", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=30_000)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--pool", type=int, default=20_000)
    parser.add_argument("--only", choices=["source", "content", "pool"])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, value = args.child[0], args.child[1]
        result = {"source": lambda: source_child(value, args.child[2]),
                  "content": lambda: content_child(int(value), args.eps),
                  "recall": lambda: recall_child(int(value), args.eps),
                  "pool": lambda: pool_child(int(value))}[kind]()  # fmt: skip
        print(json.dumps(result))
        return
    if args.only in (None, "source"):
        folder = tempfile.mkdtemp(prefix="mix-bench-")
        began = time.perf_counter()
        paths = write_source_tables(folder, args.rows)
        json.dump(paths, open(os.path.join(folder, "paths.json"), "w"))
        print(f"source: {args.rows} rows in 3 tables + {args.rows // 50} evaluation rows"
              f" (generated in {time.perf_counter() - began:.0f} s)")  # fmt: skip
        for mode in ("dry", "table"):
            r = _child(["--child", "source", folder, mode])
            what = "dry run (plan, report, pairs)" if mode == "dry" else "--table-only"
            print(f"  {what:32s} {r['seconds']:>7} s  peak {r['peak_mb']:>6} MB  {r['total']}")
    if args.only in (None, "content"):
        r = _child(["--child", "content", str(args.embeddings)])
        print(f"content: {r['rows']} embeddings, {r['clusters']} clusters, eps {args.eps}:"
              f" {r['seconds']} s, peak {r['peak_mb']} MB, removed {r['removed']},"
              f" planted copies found {r['planted_found']:.2%} of {r['planted']}")  # fmt: skip
        r = _child(["--child", "recall", str(args.subset)])
        print(f"  recall against brute force on {r['rows']} rows (brute force:"
              f" {r['brute_force_removed']} removed in {r['brute_force_s']} s):")  # fmt: skip
        for k, v in r["recall"].items():
            print(f"    k={k:<5} recall {v['recall']:.2%}  not in brute force: {v['extra']}"
                  f"  {v['seconds']} s")  # fmt: skip
    if args.only in (None, "pool"):
        r = _child(["--child", "pool", str(args.pool)])
        print(f"pooling read: {r['videos']} videos x {r['frames_each']} frames in"
              f" {r['seconds']} s ({r['videos_per_s']} videos/s)")  # fmt: skip


if __name__ == "__main__":
    main()
