"""video-convert on files of millions of rows: peak memory stays flat in the file's size.

Run: python bench/convert.py [--rows 2000000] [--workdir bench/_convert]

Generates, in each dataset's official format, files of ``--rows`` lines and of a tenth of
that: Panda-70M's csv (one source video per line, two clips each, Python-literal list cells
with commas and quotes in the captions), InternVid's jsonl (one clip per line), and
HowTo100M's ``caption.json`` (one video per ``--rows / 20``, 20 subtitles each) with its csv.
Each conversion runs as its own ``video-convert ... --out x.parquet`` process; its peak
resident memory is sampled every 0.1 s. The ratio of the peaks (big / small) is what shows
streaming: reading a file whole grows with it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from hierarchy import run_measured  # noqa: E402  (wall time and peak RSS of a process)


def panda70m(path: str, rows: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["videoID", "url", "timestamp", "caption", "matching_score"])
        for i in range(rows):
            video = f"-v{i:09d}"
            spans = [["0:00:00.000", "0:00:05.105"], ["0:00:05.105", "0:00:11.000"]]
            captions = [f"a man's hand, then dog number {i}", "café, «très» bon, and more"]
            out.writerow([video, f"https://www.youtube.com/watch?v={video}", repr(spans),
                          repr(captions), repr([0.43, 0.41])])  # fmt: skip


def internvid(path: str, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            item = {"YoutubeID": f"-v{i:09d}", "Start_timestamp": "00:00:01.500",
                    "End_timestamp": "00:00:04.250", "Caption": f"a skier, mid-air, {i}",
                    "Aesthetic_Score": 4.9, "UMT_Score": 0.42}  # fmt: skip
            f.write(json.dumps(item) + "\n")


def howto100m(folder: str, rows: int) -> list[str]:
    videos = max(1, rows // 20)
    table, captions = os.path.join(folder, "HowTo100M_v1.csv"), os.path.join(folder, "caption.json")
    with open(table, "w", encoding="utf-8") as f:
        f.write("video_id,category_1,category_2,rank,task_id\n")
        for i in range(videos):
            f.write(f"v{i:09d},Food,Baking,{i % 50},{i % 1000}\n")
    with open(captions, "w", encoding="utf-8") as f:
        f.write("{")
        for i in range(videos):
            starts = [k * 4.5 for k in range(20)]
            item = {"start": starts, "end": [s + 4.5 for s in starts],
                    "text": [f"step {k}, then «stir»" for k in range(20)]}  # fmt: skip
            f.write(("," if i else "") + json.dumps(f"v{i:09d}") + ":" + json.dumps(item))
        f.write("}")
    return [table, captions]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(__file__), "_convert"))
    args = parser.parse_args()
    convert = os.path.join(os.path.dirname(sys.executable), "video-convert")
    for dataset in ("panda70m", "internvid", "howto100m"):
        peaks = []
        for rows in (args.rows // 10, args.rows):
            folder = os.path.join(args.workdir, f"{dataset}_{rows}")
            os.makedirs(folder, exist_ok=True)
            if dataset == "panda70m":
                files = [os.path.join(folder, "panda70m_training_full.csv")]
                if not os.path.exists(files[0]):
                    panda70m(files[0], rows)
            elif dataset == "internvid":
                files = [os.path.join(folder, "InternVid-10M-FLT.jsonl")]
                if not os.path.exists(files[0]):
                    internvid(files[0], rows)
            else:
                files = [os.path.join(folder, n) for n in ("HowTo100M_v1.csv", "caption.json")]
                if not os.path.exists(files[1]):
                    files = howto100m(folder, rows)
            size = sum(os.path.getsize(p) for p in files) / 2**20
            out = os.path.join(folder, "table.parquet")
            seconds, peak, _ = run_measured([convert, dataset, *files, "--out", out])
            import pyarrow.parquet as pq

            written = pq.ParquetFile(out).metadata.num_rows
            peaks.append(peak)
            print(f"{dataset}: {rows} lines ({size:.0f} MiB) -> {written} rows in {seconds:.1f} s"
                  f" ({written / seconds:.0f} rows/s), peak RSS {peak:.0f} MiB")  # fmt: skip
        print(f"{dataset}: peak RSS at 10x the lines: {peaks[1] / peaks[0]:.2f}x")


if __name__ == "__main__":
    main()
