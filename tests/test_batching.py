"""Encoder batches are a function of the shard alone: whatever the order decoders finish in
and however frames are chunked, every frame is encoded beside the same frames."""

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_video_encode.plan.batching import Batcher


def run_batcher(videos, batch_size, group, order_seed, chunk_seed, shard_of=None):
    """Feed ``videos`` (frame counts, None: failed) in a shuffled interleaving with random
    chunk sizes; returns the batches as tuples of (video, first frame, frames)."""
    batcher = Batcher(batch_size, group)
    out = []
    shard_of = shard_of or (lambda i: (0, i))
    rng_order, rng_chunk = random.Random(order_seed), random.Random(chunk_seed)
    handed = 0
    active: dict[int, int] = {}  # video -> frames sent
    while handed < len(videos) or active:
        # Hand out up to 3 videos at a time (workers), in order.
        while handed < len(videos) and len(active) < 3:
            out += batcher.register(handed, *shard_of(handed))
            active[handed] = 0
            handed += 1
            if handed == len(videos):
                out += batcher.close()
        video = rng_order.choice(sorted(active))
        total = videos[video]
        sent = active[video]
        remaining = (total or 0) - sent
        if remaining > 0:
            n = rng_chunk.randint(1, remaining)
            out += batcher.add(video, f"src{video}-{sent}", 0, n)
            active[video] = sent + n
        else:
            out += batcher.end(video, ok=total is not None)
            del active[video]
    assert batcher.held == 0
    # A batch as the frames it holds, in order: chunking splits pieces, never batches.
    return [tuple((p.video, p.offset + k, 1) for p in b for k in range(p.n)) for b in out]


def frames_of(batches):
    return sorted((v, o + k) for b in batches for v, o, n in b for k in range(n))


@settings(max_examples=60, deadline=None)
@given(
    videos=st.lists(st.one_of(st.none(), st.integers(0, 40)), min_size=1, max_size=25),
    batch_size=st.integers(1, 16),
    group=st.integers(1, 8),
    seeds=st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
)
def test_batches_do_not_depend_on_timing_or_chunks(videos, batch_size, group, seeds):
    a = run_batcher(videos, batch_size, group, seeds[0], seeds[1])
    b = run_batcher(videos, batch_size, group, seeds[2], seeds[3])
    assert sorted(a) == sorted(b)
    # Every frame of every successful video is in exactly one batch, none is larger than
    # batch_size, and a batch never mixes groups.
    expected = sorted((v, k) for v, n in enumerate(videos) if n for k in range(n))
    assert frames_of(a) == expected
    for batch in a:
        assert sum(n for _, _, n in batch) <= batch_size
        assert len({v // group for v, _, _ in batch}) == 1


def test_a_resumed_shard_is_batched_as_in_an_uninterrupted_run():
    """Shard 1 alone (a resumed run) gets exactly the batches shard 1 got beside shard 0."""
    videos = [5, 7, 3, 9, 2, 6, 4, 8]
    per_shard = 4
    whole = run_batcher(videos, 4, 2, 1, 2, shard_of=lambda i: (i // per_shard, i % per_shard))
    alone = run_batcher(videos[per_shard:], 4, 2, 3, 4, shard_of=lambda i: (0, i))
    second = [b for b in whole if b[0][0] >= per_shard]
    shifted = [tuple((v + per_shard, o, n) for v, o, n in b) for b in alone]
    assert len(second) == 5
    assert sorted(second) == sorted(shifted)
    assert all(len({v // per_shard for v, _, _ in b}) == 1 for b in whole)


def test_whole_batches_of_a_video_and_shared_remainders():
    batcher = Batcher(4, 3)
    out = []
    for i in range(3):
        out += batcher.register(i, 0, i)
    out += batcher.close()
    out += batcher.add(1, np.zeros(6), 0, 6)  # one whole batch of video 1 at once
    assert [[(p.video, p.offset, p.n) for p in b] for b in out] == [[(1, 0, 4)]]
    out = batcher.end(1) + batcher.add(0, "a", 0, 3) + batcher.end(0)
    # Video 0's 3 frames then video 1's remainder of 2: a batch of 4 and 1 frame left over.
    assert [[(p.video, p.offset, p.n) for p in b] for b in out] == [[(0, 0, 3), (1, 4, 1)]]
    out = batcher.end(2, ok=False)  # the group is complete: its last frame goes out
    assert [[(p.video, p.offset, p.n) for p in b] for b in out] == [[(1, 5, 1)]]
    assert batcher.held == 0


def test_a_video_decoded_again_after_its_remainder_went_out_is_batched_alone():
    batcher = Batcher(4, 2)
    batcher.register(0, 0, 0)
    batcher.register(1, 0, 1)
    batcher.close()
    batcher.add(0, "a", 0, 2)
    assert batcher.end(0) == []
    batcher.add(1, "b", 0, 1)
    out = batcher.end(1)
    assert [[(p.video, p.n) for p in b] for b in out] == [[(0, 2), (1, 1)]]
    batcher.reset(1)  # its encoder was lost: decoded again
    batcher.add(1, "b2", 0, 1)
    out = batcher.end(1)
    assert [[(p.video, p.offset, p.n) for p in b] for b in out] == [[(1, 0, 1)]]
    assert batcher.held == 0


def test_killed_and_resumed_run_writes_the_bytes_of_an_uninterrupted_one(
    videos, tmp_path, checkpoint
):
    """kill -9 after the first shard's commit, then the same command: every tar and parquet
    is byte for byte the uninterrupted run's, though decoders (2 vs 1) finish in other
    orders and the resumed shards start fresh batches."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import MODEL

    from clip_video_encode.cli import main

    names = ["ntsc.mp4", "cfr.mp4", "long.mp4", "vfr.mp4", "vp9.webm", "portrait.mp4",
             "one_frame.mp4", "cfr.mp4"]  # fmt: skip
    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join(videos[n] for n in names))

    def argv(dest, workers):
        return [str(listing), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
                "--fps", "2", "--samples-per-shard", "3", "--batch-size", "8", "--precision",
                "fp32", "--workers", str(workers), "--quiet"]  # fmt: skip

    reference, dest = tmp_path / "reference", tmp_path / "resumed"
    assert main(argv(reference, 1)) == 0
    run = subprocess.Popen([sys.executable, "-m", "clip_video_encode.cli", *argv(dest, 2)],
                           stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (dest / "00000_stats.json").exists() and run.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert not (dest / "00002_stats.json").exists(), "the run ended before it was killed"
    assert main(argv(dest, 2)) == 0
    for name in sorted(os.listdir(reference)):
        if name.endswith((".tar", ".parquet")):
            assert (dest / name).read_bytes() == (reference / name).read_bytes(), name


def test_ray_encoders_that_disagree_stop_the_run():
    """Encoder actors on other nodes that loaded another file, or chose another batch size
    (a CPU node beside GPU ones), would mix models or batch otherwise: refused."""
    import pytest

    from clip_video_encode.execute.ray_plan import same_encoders
    from clip_video_encode.models.weights import EncoderLoadError

    one = {"weights_sha256": "a" * 64, "precision": "fp16"}
    assert same_encoders([(one, 256), (dict(one), 256)]) == (one, 256)
    with pytest.raises(EncoderLoadError, match="different weights"):
        same_encoders([(one, 256), ({**one, "weights_sha256": "b" * 64}, 256)])
    with pytest.raises(EncoderLoadError, match="--batch-size"):
        same_encoders([(one, 256), ({**one, "precision": "fp32"}, 16)])
