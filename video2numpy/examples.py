"""The ``Examples:`` section that ends every console script's ``--help``: real commands a
user can copy, printed as written (the description above them is wrapped as usual)."""

from __future__ import annotations

import argparse


class _ExamplesFormatter(argparse.HelpFormatter):
    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("Examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def with_examples(*commands: str) -> dict:
    """Keyword arguments for ``argparse.ArgumentParser``: ``commands``, each a comment line
    (``# ...``) or a command, as the help's last section."""
    lines = "\n".join(f"  {c}" for c in commands)
    return {"epilog": f"Examples:\n{lines}", "formatter_class": _ExamplesFormatter}
