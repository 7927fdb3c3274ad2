"""Aggregators, training, pooling and evaluation, on datasets whose answers are known
(random weights give no real accuracy: the frames are built from the text tower's own
embeddings, so the right answer is set by construction)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import MODEL

from clip_video_encode.video_models.aggregators import AggregatorConfig, build, load_aggregator
from clip_video_encode.video_models.cli import eval_main, pool_main, train_main
from clip_video_encode.video_models.evaluate import KINETICS_TEMPLATES, class_embeddings
from clip_video_encode.video_models.metrics import retrieval_metrics, topk_accuracy
from clip_video_encode.video_models.synthetic import write_dataset


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_parameter_free_aggregators_are_what_they_say():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(3, 6, 16)).astype(np.float32)
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5], bool)
    x, m = torch.from_numpy(frames), torch.from_numpy(mask)
    for name in ("mean", "max", "center"):
        got = build(AggregatorConfig(name, 16, 6))(x, m).numpy()
        for i, row in enumerate(mask):
            real = unit(frames[i][row])  # frames are compared normalised, as CLIP does
            expected = {"mean": real.mean(0), "max": real.max(0),
                        "center": real[(row.sum() - 1) // 2]}[name]  # fmt: skip
            np.testing.assert_allclose(got[i], unit(expected), atol=1e-5)


def test_learned_aggregators_start_as_mean_pooling():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(4, 8, 32)).astype(np.float32))
    m = torch.from_numpy(np.array([[1] * 8, [1] * 3 + [0] * 5, [1] * 8, [1] + [0] * 7], bool))
    mean = build(AggregatorConfig("mean", 32, 8))(x, m)
    for name in ("wavg", "attention", "cross-attention"):
        model = build(AggregatorConfig(name, 32, 8)).eval()
        torch.testing.assert_close(model(x, m), mean, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="train it first"):
        load_aggregator("attention", 32)


def brute_force_ranks(similarity, truths):
    """Rank of each query's best truth, by sorting: the first position holding its score."""
    out = []
    for row, truth in zip(similarity, truths, strict=True):
        best = max(row[t] for t in truth)
        ordered = sorted(row, reverse=True)
        out.append(ordered.index(best) + 1)
    return np.asarray(out)


def test_retrieval_metrics_equal_a_brute_force_count_ties_included():
    rng = np.random.default_rng(2)
    for _ in range(20):
        n_videos = int(rng.integers(2, 12))
        per_video = rng.integers(1, 4, size=n_videos)
        text_video = np.repeat(np.arange(n_videos), per_video)
        sim = rng.integers(0, 4, size=(len(text_video), n_videos)).astype(np.float32)  # ties
        got = retrieval_metrics(sim, text_video)
        t2v = brute_force_ranks(sim, [[v] for v in text_video])
        v2t = brute_force_ranks(sim.T, [np.flatnonzero(text_video == v) for v in range(n_videos)])
        for name, r in (("t2v", t2v), ("v2t", v2t)):
            for k in (1, 5, 10):
                assert got[f"{name}_r{k}"] == pytest.approx((r <= k).mean())
            assert got[f"{name}_median_rank"] == pytest.approx(np.median(r))
            assert got[f"{name}_mean_rank"] == pytest.approx(r.mean())
    scores = np.array([[0.5, 0.5, 0.1], [0.2, 0.1, 0.9]])
    assert topk_accuracy(scores, np.array([1, 0]), 1) == 0.5  # a tie counts for the label


@pytest.fixture(scope="module")
def text_encoder(checkpoint):
    from clip_video_encode.models.encoder import Encoder, EncoderOptions

    return Encoder(EncoderOptions(MODEL, pretrained=checkpoint, precision="fp32", text=True))


NAMES = ["archery", "bowling", "juggling balls", "playing violin", "riding a bike",
         "surfing water", "tying a tie", "washing dishes"]  # fmt: skip


@pytest.fixture(scope="module")
def classes_dataset(text_encoder, checkpoint, tmp_path_factory):
    """Frames: the class's own text embedding plus noise; the caption is the class name."""
    classes = class_embeddings(text_encoder.encode_text, NAMES, KINETICS_TEMPLATES)
    rng = np.random.default_rng(3)
    n = 64

    def videos():
        for i in range(n):
            c = i % len(NAMES)
            frames = classes[c] + rng.normal(0, 0.01, size=(6, classes.shape[1]))
            yield frames.astype(np.float16), {"caption": NAMES[c],
                                              "shuffled": NAMES[rng.integers(len(NAMES))],
                                              "split": "train" if i < 48 else "val"}  # fmt: skip

    dest = tmp_path_factory.mktemp("classes") / "ds"
    write_dataset(str(dest), videos(), n, classes.shape[1], MODEL, checkpoint, 16)
    labels = dest.parent / "labels.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    return dest, labels


def run_json(main, argv, capsys):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_zeroshot_is_right_by_construction_and_chance_when_shuffled(classes_dataset, capsys):
    dest, labels = classes_dataset
    got = run_json(eval_main, ["zeroshot", str(dest), "--labels", str(labels), "--quiet"], capsys)
    assert got["n"] == 64 and got["top1"] > 0.95 and got["top5"] == 1.0
    assert got["chance"]["top1"] == pytest.approx(1 / 8) and got["templates"] == 28
    pooled = run_json(eval_main, ["zeroshot", str(dest), "--labels", str(labels),
                                  "--score", "pooled", "--quiet"], capsys)  # fmt: skip
    assert pooled["top1"] > 0.95
    shuffled = run_json(eval_main, ["zeroshot", str(dest), "--label-column", "shuffled",
                                    "--quiet"], capsys)  # fmt: skip
    assert shuffled["top1"] < 0.35  # chance is 1/8
    for key in ("n", "top1", "top5", "mean_class_acc", "model", "weights"):
        assert key in got


def test_linear_probe_and_pooling(classes_dataset, tmp_path, capsys):
    dest, _ = classes_dataset
    got = run_json(eval_main, ["linear-probe", str(dest), str(dest), "--split", "--aggregator",
                               "mean"], capsys)  # fmt: skip
    assert got["n"] == 16 and got["n_train"] == 48 and got["top1"] > 0.9
    out = tmp_path / "videos.parquet"
    assert pool_main([str(dest), "--out", str(out), "--quiet"]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 64 and table.column_names[:2] == ["key", "id"]
    from clip_video_encode.read import iter_samples

    first = next(iter_samples(str(dest)))[1]
    np.testing.assert_allclose(table.column("embedding")[0].as_py(), unit(unit(first).mean(0)),
                               atol=1e-3)  # fmt: skip


@pytest.fixture(scope="module")
def middle_dataset(text_encoder, checkpoint, tmp_path_factory):
    """Only the middle two of eight frames show the caption; the others show other videos'
    captions. Mean pooling mixes them up; a learned aggregator can look at the middle."""
    words = ["red", "blue", "green", "small", "large", "old", "new", "fast"]
    nouns = ["dog", "car", "tree", "boat", "house", "bird", "cat", "man", "kite", "train"]
    n = 160
    captions = [f"a {words[i % 8]} {nouns[(i // 8) % 10]} in scene {i}" for i in range(n)]
    texts = text_encoder.encode_text(captions)
    rng = np.random.default_rng(4)

    def videos():
        for i in range(n):
            others = rng.choice([j for j in range(n) if j != i], 6, replace=False)
            frames = np.stack([*texts[others[:3]], texts[i], texts[i], *texts[others[3:]]])
            frames = frames + rng.normal(0, 0.05, frames.shape)
            split = "val" if i % 5 == 0 else "train"
            yield frames.astype(np.float16), {"caption": captions[i], "split": split}

    dest = tmp_path_factory.mktemp("middle") / "ds"
    write_dataset(str(dest), videos(), n, texts.shape[1], MODEL, checkpoint, 40)
    return dest


def train_args(dest, out, *extra):
    return [str(dest), "--out", str(out), "--aggregator", "attention", "--epochs", "6",
            "--batch-size", "32", "--max-frames", "8", "--layers", "1", "--quiet",
            *extra]  # fmt: skip


def test_attention_beats_mean_pooling_and_resumes_to_the_same_result(middle_dataset, tmp_path,
                                                                      capsys):  # fmt: skip
    out = tmp_path / "agg.pt"
    assert train_main(train_args(middle_dataset, out)) == 0
    last = json.loads(capsys.readouterr().out)
    assert last["epoch"] == 6
    assert last["val_t2v_r1"] > last["mean_t2v_r1"] + 0.1, last  # held-out recall
    history = (tmp_path / "agg.csv").read_text().splitlines()
    assert len(history) == 7 and history[0].startswith("epoch,steps,train_loss")
    assert (tmp_path / "agg.png").read_bytes()[:4] == b"\x89PNG"
    assert list(middle_dataset.glob("_text_embeddings/*/*.caption.npz"))  # cached beside it
    # Stopped after epoch 3 and resumed: the same weights as the run that was not stopped.
    sliced = tmp_path / "sliced.pt"
    assert train_main(train_args(middle_dataset, sliced, "--stop-after-epoch", "3")) == 0
    assert json.loads(capsys.readouterr().out)["epoch"] == 3
    assert train_main(train_args(middle_dataset, sliced)) == 0
    a = torch.load(out, weights_only=False)["state_dict"]
    b = torch.load(sliced, weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Other options on the same checkpoint: refused, with the way out.
    assert train_main(train_args(middle_dataset, sliced, "--lr", "0.01")) == 2
    assert "--restart" in capsys.readouterr().err
    # The trained aggregator pools and evaluates like the parameter-free ones.
    common = ["--max-frames", "8", "--split", "val", "--quiet"]
    got = run_json(eval_main, ["retrieval", str(middle_dataset), "--aggregator", str(out),
                               *common], capsys)  # fmt: skip
    mean = run_json(eval_main, ["retrieval", str(middle_dataset), *common], capsys)
    assert got["n_videos"] == 32 and got["t2v_r1"] > mean["t2v_r1"]
    assert got["chance"]["t2v_r1"] == pytest.approx(1 / 32)


def test_retrieval_counts_every_caption_of_a_video(text_encoder, checkpoint, tmp_path, capsys):
    """Several captions per video (a list column, as MSR-VTT's 20): each is a query of its
    own for text-to-video, and a video is found by its best-placed caption."""
    rng = np.random.default_rng(5)
    captions = [[f"video {i} take {j}" for j in range(1 + i % 3)] for i in range(12)]
    texts = [text_encoder.encode_text(c) for c in captions]

    def videos():
        for i, t in enumerate(texts):
            frames = t[0] + rng.normal(0, 0.02, size=(4, t.shape[1]))
            yield frames.astype(np.float16), {"caption": captions[i][0], "captions": captions[i]}

    dest = tmp_path / "ds"
    write_dataset(str(dest), videos(), 12, texts[0].shape[1], MODEL, checkpoint, 5)
    got = run_json(eval_main, ["retrieval", str(dest), "--quiet"], capsys)
    assert got["caption_column"] == "captions" and got["n_texts"] == sum(map(len, captions))
    from clip_video_encode.read import iter_samples

    pooled = np.stack([unit(unit(e).mean(0)) for _, e, _ in iter_samples(str(dest))])
    text_video = np.repeat(np.arange(12), [len(c) for c in captions])
    expected = retrieval_metrics(unit(np.concatenate(texts)) @ pooled.T, text_video)
    for key in ("t2v_r1", "t2v_r5", "v2t_r1", "t2v_median_rank", "v2t_mean_rank"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
