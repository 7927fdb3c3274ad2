"""The front door: the README's test command is what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1].split("```", 2)[1].strip()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert section in ci_lines, "README's test command and .ci/run have drifted apart"
    assert "torch==2.14.1 torchvision==0.29.1" in section
