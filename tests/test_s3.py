"""An S3 destination and source, against a real S3-compatible server (moto) on 127.0.0.1."""

import json

import numpy as np
import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3(monkeypatch_module):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch_module.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(endpoint_url=endpoint)
    fs.mkdir("videos-bucket")
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_encode_from_and_to_s3(s3, videos, tmp_path):
    torch = pytest.importorskip("torch")
    import open_clip

    from clip_video_encode.cli import main
    from clip_video_encode.read import iter_samples

    s3.put(videos["cfr.mp4"], "videos-bucket/in/cfr.mp4")
    s3.pipe(
        "videos-bucket/in/table.csv",
        b"location,caption\ns3://videos-bucket/in/cfr.mp4,one\n"
        b"s3://videos-bucket/in/absent.mp4,two\n",
    )
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    torch.save(open_clip.create_model("ViT-S-32").state_dict(), weights)
    argv = [
        "s3://videos-bucket/in/table.csv",
        "--dest",
        "s3://videos-bucket/out",
        "--model",
        "ViT-S-32",
        "--pretrained",
        str(weights),
        "--fps",
        "1",
        "--workers",
        "1",
        "--quiet",
    ]
    assert main(argv) == 1  # one row is missing
    listing = sorted(p.split("/")[-1] for p in s3.ls("videos-bucket/out"))
    assert listing == ["00000.parquet", "00000.tar", "00000_stats.json", "run.json"]
    stats = json.loads(s3.cat("videos-bucket/out/00000_stats.json"))
    assert stats["status_dict"] == {"failed_to_fetch": 1, "success": 1}
    samples = list(iter_samples("s3://videos-bucket/out"))
    assert (
        len(samples) == 1 and samples[0][1].shape == (3, 384) and samples[0][2]["caption"] == "one"
    )
    assert np.isfinite(samples[0][1].astype(np.float32)).all()
    assert main(argv) == 0  # resumes: the shard is done
