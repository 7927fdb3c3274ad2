"""Caption metrics, equal to the standard coco-caption scorer (``pycocoevalcap``).

BLEU-1..4, ROUGE-L, METEOR and CIDEr-D come from ``pycocoevalcap`` itself, called as its own
``COCOEvalCap`` calls them on the tokenised captions: pycocoevalcap's ``Cider`` *is* CIDEr-D
(Vedantam's ``ciderD_scorer.py``: clipped n-gram counts, a Gaussian length penalty with
sigma 6, times 10, document frequencies from the references of the set scored), which is
what papers report as "CIDEr" on VATEX and MSR-VTT. The original CIDEr (the same tf-idf
cosine without the clipping and the penalty, still times 10; ``cider_scorer.py`` in the
metric authors' repository) is not in pycocoevalcap, so :func:`cider` computes it; with
``defended=True`` the same code gives CIDEr-D, and the tests hold that equal to
pycocoevalcap's, so the two share everything but the two documented steps.

BLEU, ROUGE-L and METEOR lie in [0, 1]; CIDEr and CIDEr-D in [0, 10] (papers print them
times 100: SpaceTimeGPT's "67.2 CIDEr" is 0.672 here). METEOR needs a Java runtime; without
one it is left out and the result says why. Corpus BLEU and METEOR are not the mean of the
per-sample scores (they pool counts over the set), as in coco-caption.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .tokenize import java_status, tokenize

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "CIDEr-D")


def score(
    refs: dict[str, list[str]],
    preds: dict[str, str],
    tokenizer: str = "auto",
    meteor: bool = True,
) -> dict:
    """Corpus and per-sample scores of ``preds`` (one caption per id) against ``refs`` (one
    or more per id); both have the same ids. ``tokenizer``: ptb, python, or auto (ptb where
    Java runs). Returns ``{"corpus": {metric: value}, "per_sample": {metric: [values in
    id order]}, "ids": [...], "tokenizer": ..., "skipped": {metric: why}}``."""
    from .model import require

    require("pycocoevalcap")
    if set(refs) != set(preds):
        raise ValueError("predictions and references must have the same ids")
    ids = sorted(refs)
    if not ids:
        raise ValueError("nothing to score: no id has both a prediction and references")
    for i in ids:
        if not refs[i]:
            raise ValueError(f"id {i!r} has no reference caption")
    java, why = java_status()
    if tokenizer == "auto":
        tokenizer = "ptb" if java else "python"
    flat = [c for i in ids for c in refs[i]] + [preds[i] for i in ids]
    tokens = tokenize(flat, tokenizer)
    gts: dict[str, list[str]] = {}
    at = 0
    for i in ids:
        gts[i], at = tokens[at : at + len(refs[i])], at + len(refs[i])
    res = {i: [tokens[at + n]] for n, i in enumerate(ids)}
    corpus, per_sample, skipped = _standard(gts, res, ids, meteor and java)
    if meteor and not java:
        skipped["METEOR"] = why
    elif not meteor:
        skipped["METEOR"] = "not asked for (--no-meteor)"
    corpus["CIDEr"], per_sample["CIDEr"] = cider(gts, res, defended=False)
    return {
        "corpus": {m: corpus[m] for m in METRICS if m in corpus},
        "per_sample": {m: per_sample[m] for m in METRICS if m in per_sample},
        "ids": ids,
        "tokenizer": tokenizer,
        "skipped": skipped,
        "tokens": {"refs": gts, "preds": res},
    }


def _standard(gts, res, ids, meteor: bool):
    """pycocoevalcap's scorers, as ``COCOEvalCap.evaluate`` calls them."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    corpus: dict[str, float] = {}
    per: dict[str, list[float]] = {}
    bleu, bleus = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        corpus[f"BLEU-{n + 1}"] = float(bleu[n])
        per[f"BLEU-{n + 1}"] = _ordered(gts, bleus[n], ids)
    rouge, rouges = Rouge().compute_score(gts, res)
    corpus["ROUGE-L"], per["ROUGE-L"] = float(rouge), _ordered(gts, rouges, ids)
    cider_d, ciders = Cider().compute_score(gts, res)
    corpus["CIDEr-D"], per["CIDEr-D"] = float(cider_d), _ordered(gts, ciders, ids)
    skipped: dict[str, str] = {}
    if meteor:
        corpus["METEOR"], per["METEOR"] = _meteor(gts, res, ids)
    return corpus, per, skipped


def _ordered(gts: dict, values, ids: list[str]) -> list[float]:
    """pycocoevalcap returns per-sample scores in ``gts.keys()`` order; ours is ``ids``."""
    by_id = dict(zip(gts.keys(), (float(v) for v in values), strict=True))
    return [by_id[i] for i in ids]


def _meteor(gts, res, ids):
    """pycocoevalcap's METEOR (meteor-1.5.jar over stdio). Its protocol is one line per
    caption and ``|||`` separates fields, so a caption holding either would desynchronise it:
    tokenised captions hold no line break, and ``|||`` is removed from references as
    pycocoevalcap already does for the prediction."""
    from pycocoevalcap.meteor.meteor import Meteor

    clean = {i: [r.replace("|||", "") for r in refs] for i, refs in gts.items()}
    scorer = Meteor()
    try:
        value, values = scorer.compute_score(clean, res)
    finally:
        del scorer  # its __del__ stops the Java process
    return float(value), _ordered(clean, values, ids)


def cider(gts: dict[str, list[str]], res: dict[str, list[str]], defended: bool,
          n: int = 4, sigma: float = 6.0) -> tuple[float, list[float]]:  # fmt: skip
    """CIDEr (``defended=False``) or CIDEr-D of tokenised captions, per the metric authors'
    code: n-grams 1..n, tf-idf weights with document frequencies over the references of the
    set (``log(len(set))`` less ``log(max(1, df))``), cosine per n-gram order averaged over
    the references and the orders, times 10. CIDEr-D also clips the prediction's weights by
    the reference's and multiplies by ``exp(-delta^2 / (2 sigma^2))``, where delta is the
    difference in length; that code counts a caption's length in bigrams, kept here for
    equality (it is the word count less one for any caption of one word or more)."""
    ids = list(gts)
    refs = {i: [_ngrams(r, n) for r in gts[i]] for i in ids}
    tests = {i: _ngrams(res[i][0], n) for i in ids}
    df: dict[tuple, float] = defaultdict(float)
    for i in ids:
        for gram in {g for counts in refs[i] for g in counts}:
            df[gram] += 1.0
    log_n = math.log(float(len(ids)))

    def vector(counts):
        vec = [dict() for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            vec[k][gram] = float(tf) * (log_n - math.log(max(1.0, df[gram])))
            norm[k] += vec[k][gram] ** 2
            if k == 1:
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    scores = []
    for i in ids:
        vec, norm, length = vector(tests[i])
        total = np.zeros(n)
        for ref in refs[i]:
            rvec, rnorm, rlength = vector(ref)
            for k in range(n):
                value = 0.0
                for gram, weight in vec[k].items():
                    other = rvec[k].get(gram, 0.0)
                    value += (min(weight, other) if defended else weight) * other
                if norm[k] != 0 and rnorm[k] != 0:
                    value /= norm[k] * rnorm[k]
                if defended:
                    value *= math.exp(-((length - rlength) ** 2) / (2 * sigma**2))
                total[k] += value
        scores.append(float(np.mean(total)) / len(refs[i]) * 10.0)
    return float(np.mean(scores)), scores


def _ngrams(sentence: str, n: int) -> dict[tuple, int]:
    words = sentence.split()
    counts: dict[tuple, int] = defaultdict(int)
    for k in range(1, n + 1):
        for j in range(len(words) - k + 1):
            counts[tuple(words[j : j + k])] += 1
    return counts
