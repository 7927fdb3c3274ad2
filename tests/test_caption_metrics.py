"""clip-video-caption eval: CIDEr and CIDEr-D checked by hand, every metric equal to
pycocoevalcap (its own PTB tokenizer and scorers) on hundreds of generated captions, the
pure-Python tokenizer equal to PTB, the file formats, ids on one side only."""

from __future__ import annotations

import json
import math
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pycocoevalcap")

from clip_video_encode.caption import metrics, tokenize  # noqa: E402
from clip_video_encode.caption.cli import main  # noqa: E402
from clip_video_encode.caption.evaluate import EvalOptions, evaluate  # noqa: E402
from clip_video_encode.caption.formats import FormatError, read_captions  # noqa: E402
from clip_video_encode.caption.metrics import cider, score  # noqa: E402
from clip_video_encode.caption.tokenize import java_status, ptb_tokenize, python_tokenize  # noqa: E402

needs_java = pytest.mark.skipif(not java_status()[0], reason=f"no Java: {java_status()[1]}")


def test_cider_and_cider_d_by_hand():
    """Two videos, so every n-gram seen in one video's references has idf log 2 (and one
    seen nowhere too: log(max(1, 0)) = 0). A: 'a b c' against 'a b': unigram cosine
    2 / sqrt(3 * 2), bigram 1 / sqrt(2 * 1), no trigram in the reference (0); CIDEr is their
    mean times 10; CIDEr-D also takes the length penalty exp(-1 / 72) (lengths counted in
    bigrams: 2 and 1). B is its own reference: 1, 1, 0, 0."""
    gts = {"A": ["a b"], "B": ["d e"]}
    res = {"A": ["a b c"], "B": ["d e"]}
    a = (2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4 * 10
    plain, per = cider(gts, res, defended=False)
    assert per == pytest.approx([a, 5.0], abs=1e-12)
    assert plain == pytest.approx((a + 5.0) / 2, abs=1e-12)
    defended, per = cider(gts, res, defended=True)
    assert per == pytest.approx([a * math.exp(-1 / 72), 5.0], abs=1e-12)


def test_cider_d_clips_repeated_words_and_cider_does_not():
    """'a a' against 'a': CIDEr's unigram cosine is 1 (the vectors are parallel); CIDEr-D
    clips the prediction's weight 2L to the reference's L: L*L / (2L * L) = 0.5, times the
    penalty for one bigram against none. The bigram 'a a' has no reference bigram: 0."""
    gts, res = {"A": ["a"], "B": ["z"]}, {"A": ["a a"], "B": ["z"]}
    assert cider(gts, res, defended=False)[1] == pytest.approx([2.5, 2.5], abs=1e-12)
    expected = 0.5 * math.exp(-1 / 72) / 4 * 10
    assert cider(gts, res, defended=True)[1] == pytest.approx([expected, 2.5], abs=1e-12)
    # One video alone: every idf is log(1) = 0, and so is every score (as coco-caption).
    assert cider({"A": ["a b"]}, {"A": ["a b"]}, defended=True) == (0.0, [0.0])


_SUBJECTS = ["A man", "a woman", "Two kids", "The dog", "someone", "A chef", "people", "He"]
_VERBS = ["is playing", "plays", "rides", "is cooking", "cooks", "throws", "can't catch",
          "doesn't like", "is showing how to fold", "dances with"]  # fmt: skip
_OBJECTS = ["a guitar", "the horse", "a ball", "food", "a t-shirt", "pancakes", "the 2nd cake",
            "a \"frisbee\"", "his friend's hat", "some 1,000 stones"]  # fmt: skip
_TAILS = ["", " outside", " on a stage", " in the kitchen (slowly)", ", then laughs",
          " while music plays", "; it's fun", " -- fast", "...", "!", " at 5pm"]  # fmt: skip


def _sentence(rng: random.Random) -> str:
    text = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
    text += rng.choice(_TAILS) + rng.choice([".", "", ".", " ."])
    return text if rng.random() > 0.1 else text.upper()


def _generated(n: int, seed: int = 0):
    rng = random.Random(seed)
    refs = {f"video{i}": [_sentence(rng) for _ in range(rng.randint(1, 5))] for i in range(n)}
    preds = {k: _sentence(rng) for k in refs}
    return refs, preds


def _pycocoevalcap(refs, preds, meteor: bool):
    """The standard scorer, exactly as its COCOEvalCap runs: its PTBTokenizer, its scorers."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tokenizer.tokenize({k: [{"caption": preds[k]}] for k in refs})
    out = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out.update({f"BLEU-{n + 1}": bleu[n] for n in range(4)})
    if meteor:
        out["METEOR"], _ = Meteor().compute_score(gts, res)
    out["ROUGE-L"], _ = Rouge().compute_score(gts, res)
    out["CIDEr-D"], _ = Cider().compute_score(gts, res)
    return out, gts, res


@needs_java
def test_every_metric_equals_pycocoevalcap_on_hundreds_of_captions():
    refs, preds = _generated(300)
    standard, gts, res = _pycocoevalcap(refs, preds, meteor=False)
    ours = score(refs, preds, tokenizer="ptb", meteor=False)
    for metric, value in standard.items():
        assert ours["corpus"][metric] == pytest.approx(value, abs=1e-12), metric
    assert ours["tokens"]["refs"] == {k: gts[k] for k in ours["ids"]}
    # Our CIDEr-D code equals pycocoevalcap's, sample by sample: so CIDEr, the same code
    # without clipping and penalty, differs from the standard in those two steps only.
    own, per = cider(gts, res, defended=True)
    assert own == pytest.approx(standard["CIDEr-D"], abs=1e-12)
    by_id = dict(zip(gts, per, strict=True))
    assert [by_id[i] for i in ours["ids"]] == pytest.approx(ours["per_sample"]["CIDEr-D"],
                                                            abs=1e-12)  # fmt: skip
    assert 0 < ours["corpus"]["CIDEr"] and ours["corpus"]["CIDEr"] != ours["corpus"]["CIDEr-D"]
    python = score(refs, preds, tokenizer="python", meteor=False)
    for metric, value in python["corpus"].items():
        assert value == pytest.approx(ours["corpus"][metric], abs=1e-12), metric


TRICKY = [
    'A man can\'t play, the "guitar" (badly).',
    "",
    "   ",
    "The U.S. car costs $1,000 & 50%!",
    "Café naïve – São Paulo",
    "he's gonna go; we're 5 -- wow...",
    "and/or 24/7 spatula/",
    "horse(s) a\\b",
    "tool.. so... end.",
    "girls,l mortar,tapping 3.5 1.5million",
    "Mr. Smith e.g. etc. i.e. No. 1",
    "o'clock don't James' 90's",
    "'pop cap' ``x'' `y'",
    "e-mail cat-shaped x- -y well-",
    "ok?! wow!! a+b a=b <3",
    "cannot wanna gotta lemme",
    "A ,man",
    "emoji 😀 here",
    "line\rbreak",
    "para\u2028graph",
    "tab\tand\x0bvtab",
]


@needs_java
def test_ptb_lines_up_with_its_captions_and_python_equals_it():
    ptb = ptb_tokenize(TRICKY)
    assert len(ptb) == len(TRICKY)
    assert ptb[0] == "a man ca n't play the guitar -lrb- badly -rrb-"  # -lrb-: kept, as coco
    assert ptb[1] == ptb[2] == ""
    assert ptb[18] == "line break" and ptb[19] == "para graph"
    assert [python_tokenize(c) for c in TRICKY] == ptb


_WORDS = (
    "a man woman dog's it's don't can't they're 2nd 1,000 3.5 U.S. Mr. t-shirt and/or"
    " e.g. o'clock James' café naïve 24/7 5pm $5 50% #1 A&W well-known x-ray"
).split()


def _prose(rng: random.Random) -> str:
    """Text as people write captions: words, punctuation after them, quotes and brackets
    around them, in any case (random characters would be no caption anyone writes)."""
    out = []
    for _ in range(rng.randint(1, 14)):
        word = rng.choice(_WORDS)
        if rng.random() < 0.15:
            word = rng.choice(['"{}"', "({})", "'{}'", "[{}]", "``{}''"]).format(word)
        word += rng.choice(["", "", "", ",", ".", ";", ":", "!", "?", "...", "?!", " --"])
        out.append(word.upper() if rng.random() < 0.1 else word)
    return " ".join(out)


@needs_java
def test_the_pure_python_tokenizer_is_ptb_on_random_prose():
    rng = random.Random(1)
    texts = [_prose(rng) for _ in range(400)] + [_sentence(rng) for _ in range(200)]
    ptb = ptb_tokenize(texts)
    differ = [(t, p) for t, p in zip(texts, ptb, strict=True) if python_tokenize(t) != p]
    assert len(differ) <= len(texts) // 100, differ[:5]


@needs_java
@pytest.mark.slow
def test_meteor_equals_pycocoevalcap():
    """Apart: each METEOR scorer loads its paraphrase table in Java (about 10 s here)."""
    refs, preds = _generated(300, seed=5)
    standard, _, _ = _pycocoevalcap(refs, preds, meteor=True)
    ours = score(refs, preds, tokenizer="ptb")
    assert ours["corpus"]["METEOR"] == pytest.approx(standard["METEOR"], abs=1e-12)
    assert 0 < ours["corpus"]["METEOR"] < 1


def test_without_java_meteor_is_skipped_and_says_why(monkeypatch):
    monkeypatch.setattr(metrics, "java_status", lambda: (False, "no Java runtime (java)"))
    refs, preds = _generated(20)
    result = score(refs, preds)
    assert result["tokenizer"] == "python"
    assert "METEOR" not in result["corpus"] and "no Java" in result["skipped"]["METEOR"]
    assert set(result["corpus"]) == set(metrics.METRICS) - {"METEOR"}


def _write(path, text: str | bytes) -> str:
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return str(path)


def test_formats_read_to_the_same_captions(tmp_path):
    refs = {"v1": ["A man plays.", "Someone | plays"], "v2": ["A dog runs."]}
    vatex = [{"videoID": k, "enCap": v, "chCap": ["x"]} for k, v in refs.items()]
    coco = [{"image_id": k, "caption": c} for k, v in refs.items() for c in v]
    pipe = 'v1|A man plays.|"Someone | plays"\nv2|A dog runs.\n'
    table = pa.table({"id": ["v1", "v2"], "captions": [refs["v1"], refs["v2"]]})
    pq.write_table(table, tmp_path / "refs.parquet")
    paths = [
        _write(tmp_path / "vatex.json", json.dumps(vatex)),
        _write(tmp_path / "coco.json", json.dumps(coco)),
        _write(tmp_path / "ann.json", json.dumps({"annotations": coco, "images": []})),
        _write(tmp_path / "vatex_test.csv", pipe),
        _write(tmp_path / "plain.json", json.dumps(refs)),
        str(tmp_path / "refs.parquet"),
    ]
    for path in paths:
        assert read_captions(path, "references") == refs, path


def test_text_in_another_encoding_is_named_not_replaced(tmp_path):
    path = _write(tmp_path / "vatex_test.csv", "v1|A chef is saut\u00e9ing\n".encode("cp1252"))
    with pytest.raises(FormatError, match=r"line 1 is not UTF-8 .*--encoding \(e.g. cp1252\)"):
        read_captions(path, "references")
    assert read_captions(path, "references", encoding="cp1252") == {"v1": ["A chef is sautéing"]}


def test_ids_on_one_side_only(tmp_path):
    refs = _write(tmp_path / "refs.json", json.dumps({"a": ["x y z"], "b": ["p q"], "c": ["r"]}))
    entries = [("a", "x y"), ("b", "p q"), ("a.mp4", "x")]
    coco = [{"image_id": k, "caption": c} for k, c in entries]
    preds = _write(tmp_path / "p.json", json.dumps(coco))
    options = {"meteor": False, "chance": False, "tokenizer": "python"}
    with pytest.raises(ValueError, match="1 predicted ids have no references.*'a.mp4'.*1 refer"):
        evaluate(preds, refs, EvalOptions(**options))
    skip = evaluate(preds, refs, EvalOptions(missing="skip", **options))
    assert skip["ids"] == ["a", "b"] and skip["counts"]["missing_predictions"] == 1
    empty = evaluate(preds, refs, EvalOptions(missing="empty", **options))
    assert empty["ids"] == ["a", "b", "c"] and empty["predictions"]["c"] == ""
    assert empty["per_sample"]["BLEU-1"][2] == pytest.approx(0.0, abs=1e-6)
    coco = [{"image_id": "a", "caption": "x"}, {"image_id": "a", "caption": "y"}]
    twice = _write(tmp_path / "twice.json", json.dumps(coco))
    with pytest.raises(ValueError, match="2 predicted captions; .*--id-field key"):
        evaluate(twice, refs, EvalOptions(missing="skip", **options))
    coco = [{"image_id": "a", "caption": "x"}, {"image_id": "a", "caption": "x"}]
    same = _write(tmp_path / "same.json", json.dumps(coco))
    with pytest.raises(ValueError, match="2 predicted captions \\(the same caption each time"):
        evaluate(same, refs, EvalOptions(missing="skip", **options))


def test_the_eval_cli(tmp_path, capsys):
    refs, preds = _generated(30, seed=3)
    vatex = [{"videoID": k, "enCap": v} for k, v in refs.items()]
    refs_path = _write(tmp_path / "vatex.json", json.dumps(vatex))
    table = pa.table({"key": list(preds), "id": list(preds),
                      "generated_caption": list(preds.values())})  # fmt: skip
    pq.write_table(table, tmp_path / "captions.parquet")
    pred_path = str(tmp_path / "captions.parquet")
    per_sample = tmp_path / "per.parquet"
    assert main(["eval", pred_path, "--refs", refs_path, "--json", "--no-meteor",
                 "--per-sample", str(per_sample)]) == 0  # fmt: skip
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == set(metrics.METRICS) - {"METEOR"}
    assert all(0 <= scores[m] <= 1 for m in scores if not m.startswith("CIDEr"))
    rows = pq.read_table(per_sample).to_pylist()
    assert [r["id"] for r in rows] == sorted(refs) and rows[0]["references"] == refs[rows[0]["id"]]
    assert sum(r["CIDEr-D"] for r in rows) / len(rows) == pytest.approx(scores["CIDEr-D"])
    # Predictions that are references score above the chance level (shuffled among videos).
    first = _write(tmp_path / "first.json", json.dumps({k: v[0] for k, v in refs.items()}))
    assert main(["eval", first, "--refs", refs_path, "--no-meteor"]) == 0
    report = capsys.readouterr().out
    line = next(r for r in report.splitlines() if r.startswith("CIDEr-D"))
    value, chance = map(float, line.split()[1:])
    assert value > 2 * chance
    assert main(["eval", str(tmp_path / "nothing.json"), "--refs", refs_path]) == 2
    assert "no such file" in capsys.readouterr().err


def test_tokenizer_module_names_the_jar_it_runs():
    assert tokenize.ptb_jar().endswith("stanford-corenlp-3.4.1.jar")
