"""Summaries: KTS, the knapsack, the metrics by hand, the benchmark files' readers, summaries of
a real encoded video (JSON, mp4 frames, the page in a browser) and the evaluation end to end."""

import itertools
import json
import math

import numpy as np
import pytest
from conftest import MODEL

from clip_video_encode.summarize import SummaryOptions, greedy, knapsack, kts
from clip_video_encode.summarize.cli import main as summarize_main
from clip_video_encode.summarize.shots import fixed_shots


def segments(rng, n, d, boundaries, noise):
    labels = np.searchsorted(boundaries, np.arange(n), side="right")
    means = rng.normal(size=(len(boundaries) + 1, d))
    return means[labels] + noise * rng.normal(size=(n, d))


def reference_kts(x):
    """KTS as published (cpd_nonlin for every number of change points, then cpd_auto's
    penalty with vmax = 1), quadratic and cubic but plain."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    gram = x @ x.T
    scatter = np.full((n + 1, n + 1), np.inf)
    for s in range(n):
        for t in range(s + 1, n + 1):
            block = gram[s:t, s:t]
            scatter[s, t] = np.trace(block) - block.sum() / (t - s)
    best = np.full((n, n + 1), np.inf)
    back = np.zeros((n, n + 1), dtype=int)
    best[0, 1:] = scatter[0, 1:]
    for m in range(1, n):
        for t in range(m + 1, n + 1):
            total = best[m - 1, m:t] + scatter[m:t, t]
            back[m, t] = m + int(np.argmin(total))
            best[m, t] = total.min()
    ms = np.arange(1, n)
    penalty = np.concatenate([[0.0], ms / (2 * n) * (np.log(n / ms) + 1)])
    m = int(np.argmin(best[:, n] / n + penalty))
    points, t = [], n
    for k in range(m, 0, -1):
        t = back[k, t]
        points.append(t)
    return np.array(points[::-1], dtype=int)


def test_kts_recovers_the_change_points_and_equals_published_kts():
    rng = np.random.default_rng(0)
    truth = np.array([40, 95, 130, 210, 260])
    x = segments(rng, 300, 64, truth, noise=0.4)
    assert np.array_equal(kts(x), truth)
    assert np.array_equal(kts(x, max_shot=90), truth)  # the bound does not bind here
    for _ in range(12):  # random small sequences, noisy enough that the choice is not obvious
        n = int(rng.integers(30, 80))
        k = int(rng.integers(1, 6))
        cuts = np.sort(rng.choice(np.arange(3, n - 2), k - 1, replace=False))
        x = segments(rng, n, 8, cuts, noise=float(rng.uniform(0.2, 1.5)))
        assert np.array_equal(kts(x), reference_kts(x))


def test_kts_on_a_long_video_respects_the_shot_bound():
    rng = np.random.default_rng(1)
    x = segments(rng, 2000, 32, np.array([700, 1500]), noise=0.3)
    points = kts(x, max_shot=300)
    shots = np.diff(np.concatenate([[0], points, [2000]]))
    assert shots.max() <= 300
    assert {700, 1500} <= set(points.tolist())  # the real cuts are among them


def test_fixed_shots():
    times = np.arange(0, 10, 0.25)
    assert fixed_shots(times, 2.0).tolist() == [8, 16, 24, 32]
    assert fixed_shots(np.array([0.0, 0.9, 2.1, 2.2, 5.0]), 2.0).tolist() == [2, 4]


def test_knapsack_equals_brute_force():
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(1, 10))
        values = rng.random(n)
        weights = rng.integers(1, 12, size=n)
        capacity = int(rng.integers(0, 40))
        best = max(
            (sum(values[list(c)]), c)
            for r in range(n + 1)
            for c in itertools.combinations(range(n), r)
            if weights[list(c)].sum() <= capacity
        )
        chosen = knapsack(values, weights, capacity)
        assert weights[chosen].sum() <= capacity
        assert math.isclose(values[chosen].sum(), best[0], rel_tol=1e-12, abs_tol=1e-12)
        assert sorted(np.flatnonzero(chosen).tolist()) == list(best[1])
    # Greedy is what it says: best first, skipping what does not fit.
    assert greedy([5, 4, 3], [6, 5, 4], 9).tolist() == [True, False, False]
    assert knapsack([5, 4, 3], [6, 5, 4], 9).tolist() == [False, True, True]


def brute_tau_b(x, y):
    """Kendall's tau-b by counting every pair."""
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            a, b = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            ties_x += a == 0
            ties_y += b == 0
            concordant += a * b > 0
            discordant += a * b < 0
    pairs = len(x) * (len(x) - 1) / 2
    return (concordant - discordant) / math.sqrt((pairs - ties_x) * (pairs - ties_y))


def test_fast_correlations_equal_the_pairwise_count():
    from scipy.stats import spearmanr

    from clip_video_encode.summarize.metrics import UserRanks, rank_correlations

    rng = np.random.default_rng(4)
    users = np.stack([np.repeat(rng.integers(1, 6, size=12), 5) for _ in range(3)])
    ranks = UserRanks(users)
    for _ in range(5):
        x = rng.random(60)
        tau, rho = ranks.correlations(x)
        assert math.isclose(tau, np.mean([brute_tau_b(x, u) for u in users]), abs_tol=1e-12)
        expected_rho = np.mean([spearmanr(x, u).statistic for u in users])
        assert math.isclose(rho, expected_rho, abs_tol=1e-12)
        assert np.allclose(rank_correlations(x, users), (tau, rho), atol=1e-12)
    # Every pair of annotators (the human baseline), from their tables of level counts.
    pairs = list(itertools.combinations(users, 2))
    tau, rho = ranks.pairwise()
    assert math.isclose(tau, np.mean([brute_tau_b(a, b) for a, b in pairs]), abs_tol=1e-12)
    assert math.isclose(rho, np.mean([spearmanr(a, b).statistic for a, b in pairs]), abs_tol=1e-12)


# -- hand-made annotation files ------------------------------------------------------------

# Ten frames, three shots [0-3] [4-6] [7-9]; budget 0.3 -> 3 frames: one 3-frame shot fits.
# Annotator A's scores make shot 2 her summary, B's shot 3, C's shot 2.
USERS = {
    "A": [1, 1, 1, 1, 5, 5, 5, 2, 2, 2],
    "B": [1, 1, 1, 1, 2, 2, 2, 4, 4, 4],
    "C": [2, 2, 2, 2, 3, 3, 3, 1, 1, 1],
}
PREDICTED = [0.1, 0.2, 0.1, 0.2, 0.9, 0.8, 0.9, 0.3, 0.4, 0.3]  # picks shot 2


def write_tvsum(folder, videos):
    """TVSum's two files for ``{video_id: (category, title, seconds, {user: scores})}``."""
    anno = folder / "ydata-tvsum50-anno.tsv"
    info = folder / "ydata-tvsum50-info.tsv"
    with open(anno, "w") as f:
        for video_id, (category, _, _, users) in videos.items():
            for scores in users.values():
                f.write(f"{video_id}\t{category}\t{','.join(str(s) for s in scores)}\n")
    with open(info, "w") as f:
        f.write("category\tvideo_id\ttitle\turl\tlength\n")
        for video_id, (category, title, seconds, _) in videos.items():
            f.write(f"{category}\t{video_id}\t{title}\thttps://example.org/{video_id}\t"
                    f"{int(seconds) // 60}:{int(seconds) % 60:02d}\n")  # fmt: skip
    return anno, info


def write_h5(path, videos):
    import h5py

    with h5py.File(path, "w") as h5:
        for name, (n_frames, points, summaries) in videos.items():
            group = h5.create_group(name)
            group["n_frames"] = n_frames
            group["change_points"] = np.array(points)
            group["n_frame_per_seg"] = np.array([b - a + 1 for a, b in points])
            if summaries is not None:
                group["user_summary"] = np.array(summaries, dtype=np.float32)


def eval_json(argv, capsys):
    code = summarize_main(["eval", *argv, "--json", "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_metrics_on_hand_made_tvsum_files(tmp_path, capsys):
    anno, info = write_tvsum(tmp_path, {"vid1": ("VT", "a title", 60, USERS)})
    h5 = tmp_path / "eccv16_dataset_tvsum_google_pool5.h5"
    write_h5(h5, {"video_1": (10, [[0, 3], [4, 6], [7, 9]], None)})
    scores = tmp_path / "mine.json"
    scores.write_text(json.dumps({"vid1": PREDICTED}))
    common = ["--tvsum-anno", str(anno), "--tvsum-info", str(info), "--h5", str(h5),
              "--scores", str(scores), "--budget", "0.3", "--random-draws", "20"]  # fmt: skip
    result = eval_json(common, capsys)
    mine = result["mine"]
    # F: A and C chose shot 2 (F 100 each), B shot 3 (no overlap: 0); TVSum averages: 200/3.
    assert math.isclose(mine["f_score"], 200 / 3, rel_tol=1e-9)
    expected_tau = np.mean([brute_tau_b(np.array(PREDICTED), np.array(u)) for u in USERS.values()])
    assert math.isclose(mine["kendall_tau"], expected_tau, rel_tol=1e-9)
    assert mine["n_videos"] == 1
    # Human, leave-one-out: A vs {B, C}: 50, B vs {A, C}: 0, C vs {A, B}: 50 -> 100/3; tau
    # over the three pairs.
    human = result["human"]
    assert math.isclose(human["f_score"], 100 / 3, rel_tol=1e-9)
    pairs = [brute_tau_b(np.array(USERS[a]), np.array(USERS[b])) for a, b in
             [("A", "B"), ("A", "C"), ("B", "C")]]  # fmt: skip
    assert math.isclose(human["kendall_tau"], np.mean(pairs), rel_tol=1e-9)
    # SumMe's reduction (the best annotator) on the same files: 100.
    assert math.isclose(eval_json([*common, "--f-mode", "max"], capsys)["mine"]["f_score"], 100)
    # Random: each draw picks shot 2 or 3 (2/3 or 1/3 of annotators agree), so F is 100/3 or
    # 200/3 per draw, and its mean lies between.
    assert 100 / 3 - 1e-9 <= result["random"]["f_score"] <= 200 / 3 + 1e-9
    assert abs(result["random"]["kendall_tau"]) < 0.3
    # The baselines alone.
    alone = eval_json(["--tvsum-anno", str(anno), "--tvsum-info", str(info), "--h5", str(h5),
                       "--budget", "0.3", "--baselines", "human"], capsys)  # fmt: skip
    assert list(alone) == ["human"] and math.isclose(alone["human"]["f_score"], 100 / 3)


def test_summe_mat_files_and_h5_user_summaries_and_splits(tmp_path, capsys):
    from scipy.io import savemat

    gt = tmp_path / "GT"
    gt.mkdir()
    # Two videos of 10 frames at 25 fps; annotators' selections as SumMe stores them.
    user = np.array([[0, 0, 0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]]).T
    for name in ("Air_Force_One", "Bike_Polo"):
        savemat(gt / f"{name}.mat", {"user_score": user.astype(float), "nFrames": 10.0,
                                     "FPS": 25.0, "gt_score": user.mean(axis=1)})  # fmt: skip
    scores = tmp_path / "mine.json"
    scores.write_text(json.dumps({"Air_Force_One": PREDICTED, "Bike_Polo": PREDICTED[::-1]}))
    # Shots: 0.12 s at 25 fps = 3 frames each (0-2, 3-5, 6-8, 9).
    common = ["--summe-gt", str(gt), "--scores", str(scores), "--budget", "0.3",
              "--shots", "fixed:0.12", "--random-draws", "5"]  # fmt: skip
    result = eval_json(common, capsys)
    # Air_Force_One's best 3-frame shot is frames 3-5 (mean 0.63): it shares frames 4 and 5
    # with annotator 1 (P = R = 2/3, F 66.7) and none with annotator 2; SumMe takes the best.
    from clip_video_encode.summarize.evaluate import summary_of
    from clip_video_encode.summarize.metrics import f_score

    bounds = np.array([0, 3, 6, 9, 10])
    expected = []
    for values in (PREDICTED, PREDICTED[::-1]):
        picked = summary_of(np.array(values), bounds, 0.3)
        expected.append(max(f_score(picked, u > 0) for u in user.T))
    assert summary_of(np.array(PREDICTED), bounds, 0.3).tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    assert math.isclose(expected[0], 200 / 3)
    assert math.isclose(result["mine"]["f_score"], np.mean(expected), rel_tol=1e-9)
    # A splits file as the literature writes it (keys with the h5 path in front).
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps([
        {"train_keys": ["x.h5/Bike_Polo"], "test_keys": ["x.h5/Air_Force_One"]},
        {"train_keys": ["x.h5/Air_Force_One"], "test_keys": ["x.h5/Bike_Polo"]},
    ]))  # fmt: skip
    split = eval_json([*common, "--splits", str(splits)], capsys)["mine"]
    assert split["splits"] == 2 and split["n_videos"] == 2
    assert [s["f_score"] for s in split["per_split"]] == pytest.approx(expected)
    # The h5 alone: its user summaries and shots are the ground truth.
    h5 = tmp_path / "eccv16_dataset_summe_google_pool5.h5"
    write_h5(h5, {"video_1": (10, [[0, 3], [4, 6], [7, 9]], user.T)})
    only = eval_json(["--h5", str(h5), "--baselines", "human", "--budget", "0.3"], capsys)
    assert only["human"]["f_score"] == 0.0  # the two annotators share no frame


def test_bad_annotation_files_are_refused_with_a_reason(tmp_path, capsys):
    bad = tmp_path / "anno.tsv"
    bad.write_text("vid1\tVT\n")
    assert summarize_main(["eval", "--tvsum-anno", str(bad), "--baselines", "human"]) == 2
    assert "expected video_id, category and scores" in capsys.readouterr().err
    anno, info = write_tvsum(tmp_path, {"vid1": ("VT", "t", 60, USERS)})
    scores = tmp_path / "short.json"
    scores.write_text(json.dumps({"vid1": [0.5] * 9}))
    argv = ["eval", "--tvsum-anno", str(anno), "--tvsum-info", str(info), "--scores",
            str(scores), "--shots", "fixed:2"]  # fmt: skip
    assert summarize_main(argv) == 2
    assert "has 9 scores but the video has 10 frames" in capsys.readouterr().err
    # No shots (no fps, no h5): not refused; the correlations alone, and the note says why
    # there is no F (tests/test_summarize_without_shots.py).
    argv = ["eval", "--tvsum-anno", str(anno), "--baselines", "human"]
    assert summarize_main(argv) == 0
    assert "frame rate is unknown" in capsys.readouterr().err


# -- summaries of a real encoded video ------------------------------------------------------


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, checkpoint):
    """A 10 s, 30 fps index-coded video encoded at 4 fps, and a second one of 6 s."""
    from clip_video_encode.cli import main as encode_main
    from video2numpy.synth import write_video

    root = tmp_path_factory.mktemp("summaries")
    paths = [root / "ten.mp4", root / "six.mp4"]
    write_video(str(paths[0]), n_frames=300, fps=30, width=160, height=96)
    write_video(str(paths[1]), n_frames=180, fps=30, width=160, height=96)
    listing = root / "videos.txt"
    listing.write_text("\n".join(str(p) for p in paths))
    dest = root / "ds"
    argv = [str(listing), "--dest", str(dest), "--model", MODEL, "--pretrained", checkpoint,
            "--fps", "4", "--workers", "1", "--quiet"]  # fmt: skip
    assert encode_main(argv) == 0
    return dest, paths


def test_summary_json_and_mp4_hold_exactly_the_selected_shots(encoded, tmp_path, capsys):
    import av

    from video2numpy.synth import frame_index

    dest, paths = encoded
    out, cuts, page = tmp_path / "s.json", tmp_path / "cuts", tmp_path / "page.html"
    argv = [str(dest), "--query", "a person riding a bike", "--query", "a red car",
            "--shots", "fixed:0.5", "--out", str(out), "--video", str(cuts), "--html", str(page),
            "--quiet"]  # fmt: skip
    assert summarize_main(argv) == 0, capsys.readouterr().err
    document = json.loads(out.read_text())
    assert [v["location"] for v in document["videos"]] == [str(p) for p in paths]
    for video, seconds in zip(document["videos"], (10.0, 6.0), strict=True):
        shots = video["shots"]
        assert video["duration"] == pytest.approx(seconds)
        # Shots tile the video: from 0 to its end, each where the previous ended.
        assert shots[0]["start"] == 0 and shots[-1]["end"] == pytest.approx(seconds)
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(shots))
        assert sum(s["source_frames"] for s in shots) == round(seconds * 30)
        # Every shot's score is the mean of its frames' scores.
        scores = np.array(video["frame_scores"])
        for s in shots:
            frames = scores[s["first_frame"] : s["first_frame"] + s["n_frames"]]
            assert s["score"] == pytest.approx(frames.mean(), abs=1e-5)
        # Budget 15%: 0.5 s shots (15 frames) fit three times into 10 s, once into 6 s.
        chosen = [s for s in shots if s["selected"]]
        assert video["budget_seconds"] == pytest.approx(0.15 * seconds)
        assert len(chosen) == {10.0: 3, 6.0: 1}[seconds]
        assert video["summary_seconds"] == pytest.approx(len(chosen) * 0.5)
        assert video["budget_seconds"] - 0.5 < video["summary_seconds"] <= video["budget_seconds"]
        # The knapsack's choice: with equal weights, the best-scoring shots.
        best = sorted(shots, key=lambda s: -s["score"])[: len(chosen)]
        assert {s["start"] for s in best} == {s["start"] for s in chosen}
        # The mp4: exactly the selected shots' source frames, in order.
        expected = [f for s in chosen for f in range(round(s["start"] * 30), round(s["end"] * 30))]
        with av.open(video["summary_video"]["path"]) as container:
            got = [frame_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
            rate = container.streams.video[0].average_rate
        assert got == expected
        assert float(rate) == pytest.approx(30)
    assert page.exists()


def test_summary_page_in_a_browser(encoded, tmp_path, browser, capsys):
    dest, _ = encoded
    page_path, out = tmp_path / "page.html", tmp_path / "s.json"
    argv = [str(dest), "--query", "a dog", "--shots", "fixed:1", "--budget", "0.3",
            "--out", str(out), "--html", str(page_path), "--quiet"]  # fmt: skip
    assert summarize_main(argv) == 0, capsys.readouterr().err
    document = json.loads(out.read_text())
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.as_uri())
    sections = page.locator("section.video")
    assert sections.count() == 2
    for i, video in enumerate(document["videos"]):
        section = sections.nth(i)
        chosen = [s for s in video["shots"] if s["selected"]]
        assert section.locator("rect.shot").count() == len(video["shots"])
        assert section.locator("rect.shot.selected").count() == len(chosen)
        assert section.locator("line.boundary").count() == len(video["shots"]) - 1
        starts = section.locator("rect.shot.selected").evaluate_all(
            "rects => rects.map(r => parseFloat(r.dataset.start))"
        )
        assert starts == pytest.approx([s["start"] for s in chosen])
        # A thumbnail per selected shot, grabbed from the source and actually decoded.
        thumbs = section.locator("img.thumb")
        assert thumbs.count() == len(chosen)
        widths = thumbs.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
        assert all(w > 0 for w in widths)
        points = section.locator("polyline.scores").get_attribute("points").split()
        assert len(points) == len(video["frame_scores"])
    assert errors == []


def test_generic_summaries_and_a_missing_video(encoded, capsys):
    dest, _ = encoded
    code = summarize_main([str(dest), "000000001", "no-such-video", "--shots", "fixed:1",
                           "--budget", "0.2", "--quiet"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 1 and "no-such-video: no such key or id" in out.err
    (video,) = json.loads(out.out)["videos"]
    assert video["key"] == "000000001"
    assert sum(s["selected"] for s in video["shots"]) == 1  # 6 s x 0.2 = 1.2 s: one 1 s shot
    assert summarize_main([str(dest), "--shots", "fixed:0"]) == 2
    assert "shots must be kts or fixed:SECONDS" in capsys.readouterr().err


# -- the evaluation end to end on a TVSum-format benchmark ----------------------------------

QUERY = "a dog on a skateboard"


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory, checkpoint):
    """Three 20 s, 30 fps 'videos' as an embedding dataset sampled at 2 fps, whose frames
    resemble QUERY as much as the (hidden) importance of their 2-second segment says, and
    TVSum-format files where five annotators score that importance with noise."""
    from clip_video_encode.models.encoder import TextEncoder
    from clip_video_encode.video_models.synthetic import write_dataset

    root = tmp_path_factory.mktemp("tvsum")
    query = TextEncoder(MODEL, checkpoint).encode_text([QUERY])[0]
    query = query / np.linalg.norm(query)
    rng = np.random.default_rng(5)
    videos, rows = {}, []
    for v in range(3):
        importance = rng.integers(1, 6, size=10)  # per 2-second segment
        per_frame = np.repeat(importance, 60)  # 600 source frames
        users = {u: np.clip(per_frame + np.repeat(rng.integers(-1, 2, size=10), 60), 1, 5)
                 for u in range(5)}  # fmt: skip
        videos[f"tv{v}"] = ("VT", QUERY, 20, users)
        sampled = np.repeat(importance, 4)  # 40 frames at 2 fps
        noise = rng.normal(size=(40, len(query)))
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        frames = noise + 0.15 * sampled[:, None] * query
        rows.append((frames.astype(np.float16), {
            "id": f"tv{v}", "caption": None, "timestamps": (np.arange(40) * 0.5).tolist(),
            "duration": 20.0, "source_fps": 30.0}))  # fmt: skip
    dest = root / "ds"
    write_dataset(str(dest), iter(rows), 3, len(query), MODEL, checkpoint, 2)
    anno, info = write_tvsum(root, videos)
    return dest, anno, info


def test_evaluation_of_a_dataset_on_tvsum_files(benchmark, capsys):
    dest, anno, info = benchmark
    common = ["--tvsum-anno", str(anno), "--tvsum-info", str(info), "--dataset", str(dest),
              "--shots", "fixed:2", "--random-draws", "30"]  # fmt: skip
    result = eval_json([*common, "--query", QUERY], capsys)
    clip, human, random = result["clip"], result["human"], result["random"]
    assert clip["n_videos"] == human["n_videos"] == random["n_videos"] == 3
    # The frames follow the hidden importance, so the summary ranks as the annotators do...
    assert clip["kendall_tau"] > 0.5 and clip["spearman_rho"] > 0.6
    # ... far above chance, which is no correlation at all.
    assert abs(random["kendall_tau"]) < 0.05 and abs(random["spearman_rho"]) < 0.06
    assert clip["f_score"] > random["f_score"] + 10
    # Each video's title as its query (TVSum's info file) is the same query here.
    by_title = eval_json([*common, "--query-field", "title"], capsys)["clip"]
    assert by_title == pytest.approx(clip)
    # Shots by KTS on the dataset's embeddings: evaluated too (the same shots for all).
    kts_result = eval_json([*common[:-4], "--query", QUERY, "--baselines", "none"], capsys)
    assert list(kts_result) == ["clip"] and kts_result["clip"]["kendall_tau"] > 0.5
    # The text table.
    assert summarize_main(["eval", *common, "--query", QUERY, "--quiet"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["method", "F-score", "Kendall", "tau", "Spearman", "rho", "videos"]
    assert [line.split()[0] for line in table[1:]] == ["clip", "human", "random"]


def test_the_generic_criterion_prefers_new_content_to_a_repeat():
    """Shots 0 and 1 show the same thing (the video's main content), 2 and 3 other things:
    representativeness alone would spend the budget on 0 and 1; with the diversity discount
    the repeat is worth nothing and the second pick is new content."""
    from clip_video_encode.summarize import summarize_video
    from clip_video_encode.summarize.scores import representativeness

    rng = np.random.default_rng(6)
    directions = np.linalg.qr(rng.normal(size=(64, 3)))[0].T  # three orthonormal directions
    shots = [0, 0, 1, 2]
    frames = np.concatenate([np.repeat(directions[d][None], 10, axis=0) for d in shots])
    frames = frames + 0.01 * rng.normal(size=frames.shape)
    times = np.arange(40) * 0.5  # 20 s at 2 fps; shots of 5 s
    scores = representativeness(frames)
    assert scores[:20].min() > scores[20:].max()  # the repeated content is the typical one
    options = SummaryOptions(budget=0.5, shots="fixed:5")
    generic = summarize_video(frames, times, scores, 20.0, 30.0, options, generic=True)
    chosen = [k for k, s in enumerate(generic.shots) if s.selected]
    assert len(chosen) == 2 and len({0, 1} & set(chosen)) == 1  # one of the two, and new content
    repeat = ({0, 1} - set(chosen)).pop()
    assert generic.shots[repeat].score < 0.01  # a repeat of a better shot is worth ~nothing
    plain = summarize_video(frames, times, scores, 20.0, 30.0, options)
    assert [k for k, s in enumerate(plain.shots) if s.selected] == [0, 1]


def test_negative_query_scores_still_fill_the_budget():
    """Cosines can all be negative: the choice still fills the budget with the best shots, and
    the shots keep their mean scores."""
    from clip_video_encode.summarize import summarize_video

    times = np.arange(40) * 0.5  # 20 s at 2 fps, shots of 2 s
    scores = -1.0 + 0.01 * np.repeat(np.arange(10), 4)  # shot k scores -1 + 0.01 k
    frames = np.random.default_rng(7).normal(size=(40, 8))
    summary = summarize_video(frames, times, scores, 20.0, 30.0,
                              SummaryOptions(budget=0.3, shots="fixed:2"))  # fmt: skip
    assert [k for k, s in enumerate(summary.shots) if s.selected] == [7, 8, 9]  # 6 s of 6 s
    assert summary.shots[9].score == pytest.approx(-0.91)
