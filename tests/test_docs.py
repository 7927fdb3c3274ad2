"""The docs cannot drift: every relative link in README.md and docs/*.md resolves (files and
#anchors, as both MkDocs and GitHub name headings), every page is in the site's nav and
reachable from the README, docs/layout.md names every module, and every command shown
(``clip-video-*``, ``video2numpy``, ``video-convert``, ``python -m jobs.encode``) exists with
every ``--option`` shown, checked against the command's own argparse parser.

The parsers are taken from the real entry points in pyproject.toml: ``main([SUB, "--help"])``
runs in-process, and the parser whose help is asked for (the subcommand's, for
``clip-video-search serve`` or ``clip-video-eval zeroshot``) is caught before it prints.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import subprocess
import unicodedata
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
# Pages whose authors are writing them now, with the console script they document: a link
# to one is checked once the page exists; until then its test is skipped, saying so.
PENDING_PAGES = {"mix.md": "clip-video-mix", "caption.md": "clip-video-caption"}
# Commands run through ``python -m``: the module and its entry point.
MODULE_COMMANDS = {"jobs.encode": "jobs.encode:run"}
# A tool page's own commands: an option shown in its prose (`--x`) must be one of theirs.
PAGE_COMMANDS = {
    "encode.md": [("clip-video-encode", None)],
    "video2numpy.md": [("video2numpy", None)],
    "converters.md": [("video-convert", None)],
    "search.md": [("clip-video-search", None), ("clip-video-search", "serve")],
    "video-models.md": [
        ("clip-video-train", None),
        ("clip-video-pool", None),
        ("clip-video-eval", "zeroshot"),
        ("clip-video-eval", "retrieval"),
        ("clip-video-eval", "linear-probe"),
    ],
    "hierarchy.md": [
        ("clip-video-hierarchy", None),
        ("clip-video-search", None),
        ("clip-video-encode", None),
    ],
    "summarize.md": [("clip-video-summarize", None), ("clip-video-summarize", "eval")],
}
COMMAND = re.compile(r"^(clip-video-[a-z-]+|video2numpy|video-convert)$")
OPTION = re.compile(r"--[A-Za-z][\w-]*")
FENCE = re.compile(r"^(```|~~~)")


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --- markdown --------------------------------------------------------------------------------


def split_fences(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The prose lines (fenced blocks blanked) and the fenced blocks as (info, lines)."""
    prose, blocks, block = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if block is None and FENCE.match(stripped):
            block = (stripped[3:].strip(), [])
            prose.append("")
        elif block is not None and FENCE.match(stripped):
            blocks.append(block)
            block = None
            prose.append("")
        elif block is not None:
            block[1].append(line)
            prose.append("")
        else:
            prose.append(line)
    return prose, blocks


def code_spans(line: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"(`+)(.+?)\1", line)]


def without_code_spans(line: str) -> str:
    return re.sub(r"(`+)(.+?)\1", "", line)


def heading_text(raw: str) -> str:
    """A heading's text as rendered: links to their text, code and emphasis marks gone."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    return text.replace("`", "").replace("**", "").strip()


def mkdocs_slug(text: str) -> str:
    """Python-Markdown's toc slugify, which MkDocs and Material use."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def github_slug(text: str) -> str:
    """GitHub's heading anchors (github-slugger): lower case, punctuation dropped, each space a
    hyphen."""
    text = text.lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """The heading anchors of a page, as MkDocs names them and as GitHub does."""
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    ours, theirs = {}, {}
    for line in prose:
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        text = heading_text(m.group(1))
        for slug, seen, sep in ((mkdocs_slug(text), ours, "_"), (github_slug(text), theirs, "-")):
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            if n:
                seen[f"{slug}{sep}{n}"] = 1
    return frozenset(ours), frozenset(theirs)


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline link and image outside code."""
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    found = []
    for number, line in enumerate(prose, 1):
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", without_code_spans(line)):
            found.append((number, target))
    return found


# --- links -----------------------------------------------------------------------------------


def link_cases():
    for doc in doc_files():
        for number, target in links(doc):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            yield pytest.param(doc, target, id=f"{rel(doc)}:{number}:{target}")


def test_docs_have_links():
    """The link test below sees the links (a regex that matched nothing would pass it)."""
    targets = [t for _, t in links(README)]
    assert "docs/encode.md" in targets and len(targets) >= 12
    assert any("#" in t for doc in DOCS.glob("*.md") for _, t in links(doc))


@pytest.mark.parametrize("doc, target", list(link_cases()))
def test_relative_link_resolves(doc: Path, target: str):
    path, _, anchor = target.partition("#")
    dest = (doc.parent / path).resolve() if path else doc
    if path and not dest.exists() and dest.parent == DOCS and dest.name in PENDING_PAGES:
        pytest.skip(f"{rel(dest)} is being written by the {PENDING_PAGES[dest.name]} authors")
    assert dest.exists(), f"{rel(doc)} links to {target}, which does not exist"
    assert ROOT in dest.parents or dest == ROOT, f"{rel(doc)} links outside the repository"
    if doc.parent == DOCS:
        assert dest.parent == DOCS, (
            f"{rel(doc)} links to {target}, outside docs/: the site (mkdocs.yml) cannot follow it;"
            " name the file in code instead"
        )
    if anchor:
        assert dest.suffix == ".md", f"{rel(doc)}: an anchor into a non-page: {target}"
        ours, theirs = anchors(dest)
        assert anchor in ours, (
            f"{rel(doc)} links to #{anchor} in {rel(dest)}, which has no such heading;"
            f" its anchors: {sorted(ours)}"
        )
        assert anchor in theirs, (
            f"{rel(doc)} links to #{anchor} in {rel(dest)}: MkDocs names that heading so but"
            " GitHub does not; link a heading without punctuation"
        )


def test_the_slugs_are_those_of_mkdocs_and_github():
    """Checked against what MkDocs (Python-Markdown) and GitHub write for the same headings."""
    assert mkdocs_slug("The Ray driver's ceiling") == "the-ray-drivers-ceiling"
    assert github_slug("The Ray driver's ceiling") == "the-ray-drivers-ceiling"
    assert mkdocs_slug("On a Ray cluster (--distributor ray)") == "on-a-ray-cluster-distributor-ray"
    assert (
        github_slug("On a Ray cluster (--distributor ray)") == "on-a-ray-cluster---distributor-ray"
    )
    assert mkdocs_slug("video2numpy/") == github_slug("video2numpy/") == "video2numpy"
    assert mkdocs_slug("Changed input: replan") == "changed-input-replan"


# --- pages, nav, README ----------------------------------------------------------------------


def nav_pages(nav) -> list[str]:
    pages = []
    for item in nav:
        values = item.values() if isinstance(item, dict) else [item]
        for value in values:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_site_nav_and_linked_from_the_readme():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = nav_pages(config["nav"])
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert not set(pages) - set(nav), (
        f"pages missing from mkdocs.yml's nav: {set(pages) - set(nav)}"
    )
    absent = set(nav) - set(pages) - {"index.md"} - set(PENDING_PAGES)
    assert not absent, f"mkdocs.yml's nav names pages that do not exist: {absent}"
    readme_targets = {t.partition("#")[0] for _, t in links(README)}
    unlinked = {p for p in pages if f"docs/{p}" not in readme_targets}
    assert not unlinked, f"pages the README does not link to: {unlinked}"
    assert "index.md" not in pages, "the site's home page is the README (docs_hooks.py)"


@pytest.mark.parametrize("page", sorted(PENDING_PAGES))
def test_pages_written_by_their_authors_exist(page: str):
    if not (DOCS / page).exists():
        pytest.skip(f"docs/{page} ({PENDING_PAGES[page]}) is not written yet: linked, not checked")


def test_the_readme_stays_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines: move detail into docs/"


# --- layout ----------------------------------------------------------------------------------

LAYOUT_ROOTS = ("video2numpy", "clip_video_encode", "converters", "jobs", "bench")


def layout_entries() -> dict[str, set[str]]:
    """docs/layout.md's entries: per `## `dir/`` heading, the names its bullets list."""
    entries, current = {}, None
    prose, _ = split_fences((DOCS / "layout.md").read_text(encoding="utf-8"))
    for line in prose:
        m = re.match(r"^##\s+`([\w/.-]+)/`\s*$", line)
        if m:
            current = entries.setdefault(m.group(1), set())
        elif line.startswith("## "):
            current = None
        elif current is not None and line.startswith("- "):
            head = line.split("`:", 1)[0] + "`" if "`:" in line else ""  # "- `a.py` + `b.py`: ..."
            for span in code_spans(head):
                current.update(re.findall(r"^[\w.-]+/?$", span))
    return entries


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "--", *LAYOUT_ROOTS], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        pytest.skip("git is not installed: the tracked files cannot be listed")
    if out.returncode != 0:
        pytest.skip(
            f"not a git checkout ({out.stderr.strip()}): the tracked files cannot be listed"
        )
    return out.stdout.split()


def test_layout_names_every_module_and_nothing_else():
    text = (DOCS / "layout.md").read_text(encoding="utf-8")
    entries = layout_entries()
    # converters/' datasets are one bullet over several lines: every `name.py` in it
    datasets = re.search(r"^- One module per dataset:(.*?)(?:\n- |\n\n|\n#)", text, re.S | re.M)
    assert datasets, "docs/layout.md: the converters/ bullet 'One module per dataset:' is gone"
    entries.setdefault("converters", set()).update(re.findall(r"`(\w+\.py)`", datasets.group(1)))
    missing = []
    for path in tracked_files():
        folder, _, name = path.rpartition("/")
        if name == "__init__.py" or "__pycache__" in path:
            continue
        if name not in entries.get(folder, set()):
            missing.append(path)
        parts = folder.split("/")
        for depth in range(1, len(parts)):  # each subpackage is listed in its parent
            parent, child = "/".join(parts[:depth]), parts[depth]
            if f"{child}/" not in entries.get(parent, set()):
                missing.append(f"{parent}/{child}/")
    gone = [
        f"{folder}/{name}"
        for folder, names in entries.items()
        for name in names
        if not (ROOT / folder / name.rstrip("/")).exists()
    ]
    assert not missing and not gone, (
        f"docs/layout.md does not name {sorted(set(missing))}; it names {gone}, which are not in"
        " the tree"
    )


# --- commands --------------------------------------------------------------------------------


def console_scripts() -> dict[str, str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        return tomllib.loads(text)["project"]["scripts"]
    except ImportError:  # Python 3.10: the [project.scripts] table is plain `name = "ep"` lines
        section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
        return dict(re.findall(r'^\s*"?([\w-]+)"?\s*=\s*"([^"]+)"', section, re.M))


class _Caught(BaseException):
    """Raised from print_help: carries the parser whose help was asked for."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


@cache
def parser_of(entry_point: str, sub: str | None) -> tuple[str, frozenset[str]]:
    """The option strings the command's parser accepts: ``main([sub, "--help"])`` run
    in-process; the parser that would print its help is caught instead."""
    module, _, func = entry_point.partition(":")
    main = getattr(importlib.import_module(module), func)
    original = argparse.ArgumentParser.print_help

    def catch(self, file=None):
        raise _Caught(self)

    argparse.ArgumentParser.print_help = catch
    try:
        main(([sub] if sub else []) + ["--help"])
    except _Caught as caught:
        return caught.parser.prog, frozenset(caught.parser._option_string_actions)
    finally:
        argparse.ArgumentParser.print_help = original
    raise AssertionError(f"{entry_point} {sub or ''} --help did not reach an argparse parser")


def options_of(entry_point: str, sub: str | None) -> frozenset[str]:
    return parser_of(entry_point, sub)[1]


def entry_point_for(name: str) -> str:
    """The command's entry point; skip while a pending tool's script or module is missing."""
    scripts = console_scripts()
    if name in MODULE_COMMANDS:
        return MODULE_COMMANDS[name]
    pending = set(PENDING_PAGES.values())
    if name not in scripts:
        if name in pending:
            pytest.skip(f"{name} is not in pyproject.toml's [project.scripts] yet")
        raise AssertionError(
            f"the docs show {name}, which is not a console script in pyproject.toml"
        )
    module = scripts[name].partition(":")[0]
    if name in pending:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                pytest.skip(f"{name}: its module {module} is not there yet ({exc})")
            raise
    return scripts[name]


def command_lines(block: list[str]) -> list[str]:
    """The commands of a code block: continuation lines (after a ``\\``, or an indented line
    of a usage synopsis starting with ``[``, ``|``, ``(`` or ``--``) joined to their command."""
    commands, current, joining = [], None, False
    for line in block:
        stripped = line.strip()
        if current is not None and (joining or re.match(r"^\s+[\[|(]|^\s+--", line)):
            current += " " + stripped.rstrip("\\")
        else:
            if current is not None:
                commands.append(current)
            current = stripped.rstrip("\\") if stripped else None
        joining = stripped.endswith("\\")
    if current is not None:
        commands.append(current)
    return commands


def parse_command(text: str) -> tuple[str, list[str]] | None:
    """(command name, its arguments) when ``text`` runs one of the project's commands."""
    text = re.sub(r"^\$\s+", "", text.strip())
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError:
        tokens = text.split("#")[0].split()
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):  # VAR=value prefixes
        tokens = tokens[1:]
    if not tokens:
        return None
    if COMMAND.match(tokens[0]):
        return tokens[0], tokens[1:]
    for i in range(len(tokens) - 2):
        if (
            tokens[i].endswith("python")
            and tokens[i + 1] == "-m"
            and tokens[i + 2] in MODULE_COMMANDS
        ):
            return tokens[i + 2], tokens[i + 3 :]
    return None


def shown_options(args: list[str]) -> list[str]:
    found = []
    for token in args:
        token = token.strip("[]()|,")
        if token.startswith("--") and OPTION.fullmatch(token.split("=")[0]):
            found.append(token.split("=")[0])
    return found


def command_cases():
    for doc in doc_files():
        prose, blocks = split_fences(doc.read_text(encoding="utf-8"))
        texts = []
        for info, block in blocks:
            if info in ("", "bash", "sh", "shell", "console", "text"):
                texts += command_lines(block)
        for line in prose:
            texts += [span for span in code_spans(line) if parse_command(span)]
        for text in texts:
            parsed = parse_command(text)
            if parsed:
                name, args = parsed
                sub = args[0] if args and not args[0].startswith("-") else None
                yield pytest.param(name, sub, args, id=f"{rel(doc)}:{text[:60]}")


def test_docs_show_commands():
    """The command test below sees the commands (a parser that found none would pass it)."""
    names = {case.values[0] for case in command_cases()}
    assert {"clip-video-encode", "clip-video-search", "video-convert", "video2numpy"} <= names
    assert "jobs.encode" in names


@pytest.mark.parametrize("name, sub, args", list(command_cases()))
def test_command_shown_exists_with_its_options(name: str, sub: str | None, args: list[str]):
    entry_point = entry_point_for(name)
    prog, accepted = parser_of(entry_point, sub)
    unknown = [o for o in shown_options(args) if o not in accepted]
    shown = " ".join([name, *args])
    assert not unknown, f"`{shown}` shows {unknown}, which `{prog}` does not accept"


def test_options_named_in_a_tool_page_belong_to_its_commands():
    unknown = []
    for page, commands in PAGE_COMMANDS.items():
        accepted = set()
        for name, sub in commands:
            accepted |= options_of(entry_point_for(name), sub)
        prose, _ = split_fences((DOCS / page).read_text(encoding="utf-8"))
        for number, line in enumerate(prose, 1):
            for span in code_spans(line):
                if parse_command(span):
                    continue  # a whole command: checked above against its own parser
                for option in OPTION.findall(span):
                    if span.lstrip("[").startswith(option) and option not in accepted:
                        unknown.append(f"docs/{page}:{number}: {option}")
    assert not unknown, f"options the page's commands do not accept: {unknown}"


def test_a_wrong_option_is_caught():
    """The check can fail: an option no parser has is reported, a real one is not."""
    accepted = options_of(console_scripts()["clip-video-search"], "serve")
    assert "--port" in accepted and "--no-such-option" not in accepted
    assert shown_options(["DATASET", "[--top", "10]", "(--a-b=3", "|"]) == ["--top", "--a-b"]
    assert parse_command("clip-video-eval zeroshot D --labels l.txt  # a comment's quote") == (
        "clip-video-eval",
        ["zeroshot", "D", "--labels", "l.txt"],
    )
    assert command_lines(["x --a \\", "    --b", "y [--c]", "  [--d]", "z"]) == [
        "x --a  --b",
        "y [--c] [--d]",
        "z",
    ]
