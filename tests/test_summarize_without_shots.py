"""``clip-video-summarize eval`` on TVSum's tsv files alone: the rank correlations need no
shots, so they are reported; the F-score only for the videos whose shots are known, and the
output says which are not and why."""

import itertools
import json
import math

import h5py
import numpy as np
from scipy.stats import spearmanr
from test_summarize import PREDICTED, USERS, brute_tau_b, write_h5, write_tvsum

from clip_video_encode.summarize.cli import main as summarize_main


def run(argv, capsys):
    code = summarize_main(["eval", *argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out


def human_correlations(users):
    pairs = list(itertools.combinations([np.array(u) for u in users], 2))
    return (np.mean([brute_tau_b(a, b) for a, b in pairs]),
            np.mean([spearmanr(a, b).statistic for a, b in pairs]))  # fmt: skip


def test_baselines_from_the_tsv_files_alone(tmp_path, capsys):
    """No info file (no frame rate), no h5 (no shots), --shots kts without a dataset."""
    anno, _ = write_tvsum(tmp_path, {"vid1": ("VT", "t", 60, USERS)})
    out = run(["--tvsum-anno", str(anno), "--baselines", "human,random", "--json",
               "--random-draws", "20"], capsys)  # fmt: skip
    result = json.loads(out.out)
    tau, rho = human_correlations(USERS.values())
    human, random = result["human"], result["random"]
    assert math.isclose(human["kendall_tau"], tau, rel_tol=1e-9)
    assert math.isclose(human["spearman_rho"], rho, rel_tol=1e-9)
    assert human["f_score"] is None and human["f_videos"] == 0 and human["n_videos"] == 1
    assert abs(random["kendall_tau"]) < 0.3 and random["f_score"] is None
    assert "no F-score for 1 of 1 videos" in out.err and "--shots fixed:SECONDS" in out.err
    # The table says so too.
    out = run(["--tvsum-anno", str(anno), "--baselines", "human"], capsys)
    row = next(line for line in out.out.splitlines() if line.startswith("human"))
    assert row.split()[1] == "-" and float(row.split()[2]) == round(tau, 4)
    assert "F-score" in out.err


def test_a_method_is_ranked_without_shots_and_scored_where_they_are_known(tmp_path, capsys):
    """Two videos, the h5 gives the first one's shots only: F is over that one, the
    correlations over both."""
    second = {k: v[::-1] for k, v in USERS.items()}
    anno, _ = write_tvsum(tmp_path, {"vid1": ("VT", "a", 60, USERS),
                                     "vid2": ("VT", "b", 60, second)})  # fmt: skip
    h5 = tmp_path / "eccv16_dataset_tvsum_google_pool5.h5"
    write_h5(h5, {"video_1": (10, [[0, 3], [4, 6], [7, 9]], None)})
    with h5py.File(h5, "a") as f:
        f["video_1"]["video_name"] = "vid1"  # joined by name: vid2 has no shots
    scores = tmp_path / "mine.json"
    scores.write_text(json.dumps({"vid1": PREDICTED, "vid2": PREDICTED}))
    out = run(["--tvsum-anno", str(anno), "--h5", str(h5), "--scores", str(scores),
               "--budget", "0.3", "--baselines", "none", "--json"], capsys)  # fmt: skip
    mine = json.loads(out.out)["mine"]
    assert math.isclose(mine["f_score"], 200 / 3, rel_tol=1e-9)  # vid1's, as with shots
    assert mine["f_videos"] == 1 and mine["n_videos"] == 2
    taus = [np.mean([brute_tau_b(np.array(PREDICTED), np.array(u)) for u in users.values()])
            for users in (USERS, second)]  # fmt: skip
    assert math.isclose(mine["kendall_tau"], np.mean(taus), rel_tol=1e-9)
    assert "no F-score for 1 of 2 videos" in out.err and "vid2" in out.err
