"""MkDocs hook: the README is the site's home page.

The README is the front door on GitHub and the site's first page alike, so it is written
once: its links into ``docs/`` (``docs/encode.md``) are made relative to the site
(``encode.md``) and it is served as ``index.md``. Any other relative link in the README would
point outside the site; ``mkdocs build --strict`` then fails on it, and tests/test_docs.py
checks the README's links resolve in the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files


def on_files(files: Files, config) -> Files:
    readme = Path(config["config_file_path"]).parent / "README.md"
    text = re.sub(r"\]\(docs/", "](", readme.read_text(encoding="utf-8"))
    files.append(File.generated(config, "index.md", content=text))
    return files
