"""Entry point for ``ray job submit``: ``clip-video-encode`` on the cluster the job runs in.

    ray job submit --address http://HEAD:8265 --working-dir . \
        --runtime-env jobs/runtime_env.yaml -- \
        python -m jobs.encode s3://bucket/videos.parquet --dest s3://bucket/embeddings --fps 1

Takes every ``clip-video-encode`` option; ``--distributor ray`` is implied. Inside a job Ray
sets ``RAY_ADDRESS``, so the executor joins the job's cluster. The exit code is the CLI's:
0 when every row succeeded, so ``ray job status`` says SUCCEEDED only then (pass
``--allow-failures`` to accept failed rows).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from clip_video_encode.cli import main


def run(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--distributor" or a.startswith("--distributor=") for a in argv):
        argv += ["--distributor", "ray"]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run())
