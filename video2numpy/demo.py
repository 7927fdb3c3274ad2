"""The demo: generate sample videos, sample them with video2numpy, encode with clip-video-encode.

    python -m video2numpy.demo [--out demo] [--pretrained TAG_OR_PATH]

Nothing is downloaded but the packages: the videos are generated here (frame i's pixels
encode i, so the output can be checked), and the encoder uses random ViT-B-32 weights unless
``--pretrained`` names real ones (a tag or a checkpoint file). The random weights are saved
to ``OUT/weights/`` and encoded from that file, so that the tools that read the dataset
afterwards (search and its server, pooling, summaries) load the very same weights, as they
would real ones.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os

import numpy as np

from .cli import main as video2numpy_main
from .synth import frame_index, write_video


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo", help="folder for the videos and the output")
    parser.add_argument("--pretrained", default="none",
                        help="encoder weights (none: random, saved to OUT/weights/)")  # fmt: skip
    args = parser.parse_args()
    videos = os.path.join(args.out, "videos")
    os.makedirs(videos, exist_ok=True)
    specs = {
        "ntsc_720p.mp4": dict(n_frames=600, fps=30000 / 1001, width=1280, height=720),
        "portrait.mp4": dict(n_frames=300, fps=30, width=360, height=640),
        "vp9.webm": dict(n_frames=240, fps=24, width=426, height=240, codec="libvpx-vp9"),
        "vfr.mp4": dict(
            n_frames=200, frame_times=list(np.cumsum([0] + [0.02, 0.05] * 99 + [0.02]))
        ),
    }
    for name, spec in specs.items():
        path = os.path.join(videos, name)
        if not os.path.exists(path):
            write_video(path, **spec)
    table = os.path.join(args.out, "videos.csv")
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["location", "id", "start", "end"])
        for name in specs:
            writer.writerow([os.path.join(videos, name), name.split(".")[0], "", ""])
        writer.writerow([os.path.join(videos, "ntsc_720p.mp4"), "ntsc_window", 5, 10])
        writer.writerow([os.path.join(videos, "not_there.mp4"), "missing", "", ""])
    dest = os.path.join(args.out, "frames")
    print(f"video2numpy {table} --dest {dest} --fps 1 --overwrite")
    code = video2numpy_main([table, "--dest", dest, "--fps", "1", "--overwrite"])
    for name in ("ntsc_720p", "ntsc_window", "missing"):
        with open(os.path.join(dest, name + ".json")) as f:
            record = json.load(f)
        if record["status"] == "success":
            frames = np.load(os.path.join(dest, name + ".npy"))
            index = [frame_index(f) for f in frames]
            print(f"  {name}: {frames.shape} frames {index} at {record['timestamps']} s")
        else:
            print(f"  {name}: {record['status']}: {record['error_message']}")
    print("(the missing video is there on purpose: it is recorded, and the exit code is 1)\n")

    from clip_video_encode.cli import main as encode_main
    from clip_video_encode.read import iter_samples

    embeddings = os.path.join(args.out, "embeddings")
    pretrained = args.pretrained
    if pretrained == "none":
        pretrained = random_weights(os.path.join(args.out, "weights"), "ViT-B-32")
        print(f"(random weights, saved to {pretrained}: no weights can be downloaded here)")
    argv = [table, "--dest", embeddings, "--fps", "1", "--model", "ViT-B-32",
            "--pretrained", pretrained, "--allow-failures"]  # fmt: skip
    print("clip-video-encode " + " ".join(argv))
    encode_code = encode_main(argv)
    for key, emb, meta in iter_samples(embeddings, include_failed=True):
        shape = "no embeddings" if emb is None else f"embeddings {emb.shape} {emb.dtype}"
        print(f"  {key} {meta['id']}: {meta['status']}, {shape}")
    print(f"dataset: {embeddings}/ (00000.tar, 00000.parquet, 00000_stats.json, run.json)")
    return 0 if code == 1 and encode_code == 0 else 1


def random_weights(folder: str, model: str, seed: int = 0) -> str:
    """A checkpoint file of ``model`` with random weights drawn from ``seed``: written once,
    then reused, so that a rerun of the demo resumes its dataset with the same weights."""
    import open_clip
    import torch

    path = os.path.join(folder, f"{model.lower()}-random-seed{seed}.pt")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        torch.manual_seed(seed)
        logging.disable(logging.WARNING)  # open_clip warns that the weights are random
        try:
            state = open_clip.create_model(model, pretrained=None).state_dict()
        finally:
            logging.disable(logging.NOTSET)
        torch.save(state, path + ".partial")
        os.replace(path + ".partial", path)  # a demo stopped midway leaves no half file
    return path


if __name__ == "__main__":
    raise SystemExit(main())
