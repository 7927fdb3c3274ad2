"""Every console script's ``--help`` ends with an ``Examples:`` section of real commands, and
every option an example shows is one the command accepts."""

import contextlib
import importlib
import io
import shlex

import pytest
from test_docs import console_scripts, parser_of, shown_options

# Subcommands with a parser (and a help) of their own.
SUBCOMMANDS = {"clip-video-search": ["serve"], "clip-video-summarize": ["eval"],
               "clip-video-caption": ["eval"]}  # fmt: skip


def help_text(entry_point: str, sub: str | None) -> str:
    module, _, func = entry_point.partition(":")
    main = getattr(importlib.import_module(module), func)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(([sub] if sub else []) + ["--help"])
    return out.getvalue()


def cases():
    for name, entry_point in sorted(console_scripts().items()):
        for sub in [None, *SUBCOMMANDS.get(name, [])]:
            yield pytest.param(name, entry_point, sub, id=f"{name} {sub or ''}".strip())


@pytest.mark.parametrize("name, entry_point, sub", list(cases()))
def test_help_ends_with_examples(name, entry_point, sub):
    try:
        text = help_text(entry_point, sub)
    except ModuleNotFoundError as exc:
        pytest.skip(f"{name}: its module is not there yet ({exc})")
    assert "\nExamples:\n" in text, f"{name} {sub or ''} --help has no Examples: section"
    examples = [line.strip() for line in text.split("\nExamples:\n", 1)[1].splitlines()]
    examples = [e for e in examples if e]
    assert 2 <= len(examples) <= 4, examples
    for example in examples:
        tokens = shlex.split(example)
        assert tokens[0] == name, f"{example!r} is not a {name} command"
        args = tokens[1:]
        example_sub = args[0] if args and not args[0].startswith("-") else None
        prog, accepted = parser_of(entry_point, example_sub if example_sub in
                                   SUBCOMMANDS.get(name, []) or name == "clip-video-eval"
                                   else None)  # fmt: skip
        unknown = [o for o in shown_options(args) if o not in accepted]
        assert not unknown, f"`{example}` shows {unknown}, which `{prog}` does not accept"
