"""Caption tokenisation as the coco-caption scorer does it: the Stanford PTB tokenizer (Java),
or a pure-Python tokenizer that reproduces it where no Java runtime is present.

coco-caption (``pycocoevalcap``) runs Stanford CoreNLP 3.4.1's ``PTBTokenizer`` with
``-preserveLines -lowerCase`` over one caption per line, then drops the tokens in its
``PUNCTUATIONS`` list. That list spells brackets in upper case (``-LRB-``) while the tokens
come out lower-cased (``-lrb-``), so brackets survive as tokens: a quirk of the standard
scorer, kept here on both paths because the scores must equal it.

:func:`ptb_tokenize` runs the same jar with the same options, with three differences that
change nothing for ordinary text and fix what broke on hostile text: captions are put on one
line each by joining their whitespace (pycocoevalcap replaces only ``\\n``, and a ``\\r`` or
U+2028 in a caption shifted every later caption onto another video's line); the scratch
file is written in the system's temporary folder (pycocoevalcap writes beside its own
package, which fails on a read-only install); text is passed as UTF-8 whatever the locale
(``-encoding utf-8``: Java's default under a POSIX locale turned every non-ASCII letter into
``?``). The output must have one line per caption, or it raises.

:func:`python_tokenize` is a regular-expression lexer written against that jar's output. On
the 53,360 English references of VATEX's public test set (SpaceTimeGPT's copy) it gives the
PTB tokens for all but 12 captions (99.98 %), and for every one of SpaceTimeGPT's 5,295
generated captions; docs/caption.md gives the scores each way.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile

# pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS, the tokens it removes.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
     "--", "...", ";"]
)  # fmt: skip
_ABBREVIATIONS = (
    "mr|mrs|ms|dr|st|jr|sr|vs|etc|prof|inc|co|ltd|mt|ft|rev|gen|sen|rep|gov|capt|lt|col|sgt"
    "|corp|dept|univ|ave|blvd|rd|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_TOKEN = re.compile(
    r"https?://\S+"  # a URL, whole
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an e-mail address
    r"|(?:[^\W\d_]\.){2,}"  # u.s.a., e.g.
    r"|(?:" + _ABBREVIATIONS + r")\.(?!\w)|no\.(?=\s*\d)"  # mr., no. 1
    r"|[^\W\d_]\.(?=\s|$|\.)"  # a single letter and its period: an initial
    r"|\d+(?:[.,/:]\d+)+"  # 1,000 3.5 24/7 10:30
    r"|'(?:s|re|ve|ll|d|m)(?!\w)"  # a clitic after a number or a quote
    r"|\w*[^\W\d_]in'(?!\w)"  # dunkin'
    r"|\w+(?:[-'./&]\w+)*"  # words, with inner hyphens, apostrophes, periods, slashes
    r"|\.{2,}|-{2,}|[\u2013\u2014]"  # ellipses and dashes
    r"|``|''|[!?]+"  # ?! is one token (and stays: it is not in PUNCTUATIONS)
    r"|\S",
    re.IGNORECASE,
)
_CLITIC = re.compile(r"(?i)^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")
_SPLIT_WORDS = {"cannot": 3, "gonna": 3, "gotta": 3, "wanna": 3, "lemme": 3, "gimme": 3}
_AS_PTB = {'"': "''", "(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-",
           "}": "-RCB-", "\u2013": "--", "\u2014": "--"}  # fmt: skip


def one_line(text: str) -> str:
    """A caption on one line: its whitespace (line breaks of every kind included) joined."""
    return " ".join(str(text).split())


def _drop_punctuation(tokens) -> str:
    return " ".join(t for t in tokens if t and t not in PUNCTUATIONS)


def python_tokenize(text: str) -> str:
    """One caption as the PTB path gives it: lower case, tokens joined by spaces, the
    coco-caption punctuation removed."""
    # The PTB lexer drops characters outside the basic plane (emoji) as untokenizable.
    text = "".join(c for c in one_line(text) if ord(c) <= 0xFFFF and c.isprintable())
    tokens = []
    for token in _TOKEN.findall(text):
        if len(token) > 1 and set(token) == {"."}:
            token = "..."
        elif token.startswith("--"):
            token = "--"
        token = _AS_PTB.get(token, token)
        clitic = _CLITIC.match(token)
        cut = _SPLIT_WORDS.get(token.lower())
        if clitic and not token.startswith("'"):
            tokens.extend(clitic.groups())
        elif cut:
            tokens.extend([token[:cut], token[cut:]])
        else:
            tokens.append(token)
    return _drop_punctuation(t.lower() for t in tokens)


class TokenizerError(RuntimeError):
    """The PTB tokenizer could not run or gave output that does not line up."""


@functools.lru_cache(maxsize=1)
def java_status() -> tuple[bool, str]:
    """(usable, why not): a Java runtime and the jars pycocoevalcap ships."""
    java = shutil.which("java")
    if java is None:
        return False, "no Java runtime (java) on PATH; install one, e.g. default-jre-headless"
    try:
        result = subprocess.run([java, "-version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"java does not run ({exc})"
    if result.returncode != 0:
        return False, f"java -version failed: {result.stderr.decode(errors='replace')[:200]}"
    return True, ""


def ptb_jar() -> str:
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb

    folder = os.path.dirname(os.path.abspath(ptb.__file__))
    return os.path.join(folder, ptb.STANFORD_CORENLP_3_4_1_JAR)


def ptb_tokenize(captions: list[str]) -> list[str]:
    """Each caption through Stanford's PTBTokenizer (pycocoevalcap's jar and options), the
    coco-caption punctuation removed. One Java process for the whole list."""
    if not captions:
        return []
    usable, why = java_status()
    if not usable:
        raise TokenizerError(why)
    lines = [one_line(c) for c in captions]
    with tempfile.TemporaryDirectory(prefix="clip-video-caption-ptb-") as folder:
        path = os.path.join(folder, "captions.txt")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines))
        cmd = ["java", "-cp", ptb_jar(), "edu.stanford.nlp.process.PTBTokenizer",
               "-preserveLines", "-lowerCase", "-encoding", "utf-8", path]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True)
    if result.returncode != 0:
        tail = result.stderr.decode("utf-8", errors="replace").strip()[-500:]
        raise TokenizerError(f"the PTB tokenizer failed (exit {result.returncode}): {tail}")
    out = result.stdout.decode("utf-8").split("\n")
    if out and out[-1] == "":
        out.pop()  # the newline after the last line
    out += [""] * (len(lines) - len(out)) if len(out) < len(lines) and not lines[-1] else []
    if len(out) != len(lines):
        raise TokenizerError(
            f"the PTB tokenizer gave {len(out)} lines for {len(lines)} captions; they cannot"
            " be matched to their captions"
        )
    return [_drop_punctuation(line.rstrip().split(" ")) for line in out]


def tokenize(captions: list[str], tokenizer: str) -> list[str]:
    """``ptb`` or ``python``."""
    if tokenizer == "ptb":
        return ptb_tokenize(captions)
    if tokenizer == "python":
        return [python_tokenize(c) for c in captions]
    raise ValueError(f"tokenizer must be ptb or python, got {tokenizer!r}")
