import numpy as np
import pytest

from video2numpy.sampling import Sampling, select_frames


def grid(n, fps):
    return np.arange(n) / fps


def test_every_frame_by_default():
    assert select_frames(grid(10, 30), Sampling()).tolist() == list(range(10))


def test_every_nth():
    assert select_frames(grid(10, 30), Sampling(every_nth=3)).tolist() == [0, 3, 6, 9]


def test_true_fps_on_ntsc():
    # 29.97 fps sampled at 1 fps: one frame per true second, not one per 30 frames.
    times = grid(600, 30000 / 1001)  # 20.02 s
    picked = select_frames(times, Sampling(fps=1))
    assert len(picked) == 21  # 0 .. 20 s; the video lasts past 20 s
    assert np.abs(times[picked] - np.arange(21)).max() <= 0.5 / (30000 / 1001)
    assert picked[:4].tolist() == [0, 30, 60, 90] and picked[10] == 300
    assert picked[-1] == 599  # nearest frame to 20.0 s
    # Every 30th frame would drift a frame every 33 s; true fps does not.
    long_times = grid(36000, 30000 / 1001)
    long_pick = select_frames(long_times, Sampling(fps=1))
    assert np.abs(long_times[long_pick] - np.arange(len(long_pick))).max() < 0.017


def test_fps_higher_than_source_keeps_each_frame_once():
    picked = select_frames(grid(10, 5), Sampling(fps=20))
    assert picked.tolist() == list(range(10))


def test_num_frames_is_linspace_over_window():
    times = grid(300, 30)
    assert select_frames(times, Sampling(num_frames=8)).tolist() == (
        np.linspace(0, 300, 8, endpoint=False).astype(int).tolist()
    )
    # Window [2, 4) holds frames 60..119.
    expected = 60 + np.linspace(0, 60, 8, endpoint=False).astype(int)
    got = select_frames(times, Sampling(num_frames=8, start=2, end=4))
    assert got.tolist() == expected.tolist()


def test_num_frames_repeats_when_video_is_short():
    got = select_frames(grid(3, 30), Sampling(num_frames=8))
    assert len(got) == 8 and got.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]


def test_window_with_fps_starts_at_window():
    times = grid(300, 30)
    got = select_frames(times, Sampling(fps=2, start=1.5, end=3.0))
    assert times[got].tolist() == pytest.approx([1.5, 2.0, 2.5])


def test_window_past_end_is_empty():
    assert len(select_frames(grid(30, 30), Sampling(fps=1, start=5, end=6))) == 0


def test_max_frames_thins_evenly():
    got = select_frames(grid(100, 10), Sampling(fps=10, max_frames=5))
    assert got.tolist() == [0, 20, 40, 60, 80]


def test_variable_frame_rate_uses_real_times():
    times = np.array([0.0, 0.02, 0.07, 0.4, 0.9, 1.01, 1.6, 1.95])
    got = select_frames(times, Sampling(fps=1))
    # Lasts until 1.95 s + median gap (0.33 s): grid points 0, 1 and 2 s.
    assert got.tolist() == [0, 5, 7]


def test_one_frame_video():
    assert select_frames(np.array([0.0]), Sampling(fps=1)).tolist() == [0]
    assert select_frames(np.array([0.0]), Sampling(num_frames=4)).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fps": 1, "num_frames": 8},
        {"every_nth": 0},
        {"fps": -1},
        {"num_frames": 2.5},
        {"start": 5, "end": 3},
        {"start": -1},
    ],
)
def test_bad_sampling_is_refused(kwargs):
    with pytest.raises(ValueError):
        Sampling(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"start": float("nan")}, {"end": float("nan")}, {"start": float("inf")},
     {"fps": float("inf")}, {"start": 1, "end": float("nan")}],
)  # fmt: skip
def test_a_bound_that_is_no_number_is_refused(kwargs):
    """NaN passes every comparison (start < 0, end <= start are False): a NaN window selected
    no frame from any video, and a NaN or infinite value broke run.json midway."""
    with pytest.raises(ValueError):
        Sampling(**kwargs)


def test_a_run_wide_window_that_is_no_number_is_a_usage_error(tmp_path, capsys):
    """clip-video-encode --start nan left a run.json cut short in the destination (a rerun
    then called it another tool's); video2numpy's every video came out no_frames."""
    from video2numpy.cli import main as v2n_main

    table = tmp_path / "videos.csv"
    table.write_text("location\nsomewhere.mp4\n")
    for option in (["--start", "nan"], ["--end", "nan"], ["--end", "inf"], ["--fps", "inf"]):
        with pytest.raises(SystemExit) as exc:
            v2n_main([str(table), "--dest", str(tmp_path / "frames"), *option])
        assert exc.value.code == 2
        assert option[0] in capsys.readouterr().err
    assert not (tmp_path / "frames").exists()
