"""``collapselab diagnose`` end to end: output, JSON, and one-line errors (exit code 2)."""

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from collapselab.cli import main
from collapselab.diagnosis import diagnose
from collapselab.metrics.text import (
    distinct_n,
    entropy_of_counts,
    tokenize_corpus,
    zipf_exponent_of_counts,
)

COMMON = "the cat sat on the mat and the dog sat on the log".split()


def _corpora(tmp_path):
    rng = np.random.default_rng(0)
    reference = []
    for i in range(60):
        words = list(rng.choice(COMMON, size=12))
        words.insert(int(rng.integers(0, 12)), f"rare{i}")  # each seen once
        if i % 3 == 0:
            words += ["frequent", "phrase"]
        reference.append(" ".join(words))
    # The candidate keeps the common words but lost every rare word and "frequent".
    candidate = [" ".join(rng.choice(COMMON, size=13)) for _ in range(60)]
    (tmp_path / "ref.txt").write_text("\n\n".join(reference), encoding="utf-8")
    (tmp_path / "cand.txt").write_text("\n\n".join(candidate), encoding="utf-8")
    return reference, candidate


def test_diagnose_json_end_to_end(tmp_path, capsys):
    reference, _ = _corpora(tmp_path)
    argv = ["diagnose", str(tmp_path / "ref.txt"), str(tmp_path / "cand.txt")]
    code = main([*argv, "--unit", "paragraph", "--json", "--bootstrap", "50", "--top", "5"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    ref, cand = out["reference"], out["candidate"]
    assert ref["documents"]["value"] == 60 and cand["documents"]["value"] == 60
    # the reference's own rare survival is 1 by definition: not shown as a measurement
    assert ref["rare_survival_k1"] == {"value": None, "lo": None, "hi": None}
    assert cand["rare_survival_k1"]["value"] == 0.0
    assert out["verdict"].startswith("the candidate keeps 0% of the reference's hapaxes")
    assert cand["rare_mass"]["value"] == 0.0
    for side in (ref, cand):
        for metric, m in side.items():
            if isinstance(m, dict) and m["lo"] is not None:
                assert m["lo"] <= m["value"] <= m["hi"], metric
    assert out["missing_types"][0] == {"type": "frequent", "reference_count": 20}
    assert out["missing_types"][1] == {"type": "phrase", "reference_count": 20}
    assert {"bigram": "frequent phrase", "reference_count": 20} in out["missing_bigrams"]
    # Point values are the metric functions used in chains.
    corpus = tokenize_corpus(reference)
    assert ref["types"]["value"] == len(corpus.types)
    assert ref["entropy"]["value"] == pytest.approx(entropy_of_counts(corpus.counts))
    assert ref["zipf_exponent"]["value"] == pytest.approx(zipf_exponent_of_counts(corpus.counts))
    for n in range(1, 5):
        assert ref[f"distinct_{n}"]["value"] == pytest.approx(distinct_n(corpus, n))


def test_diagnose_text_output_and_match_size(tmp_path, capsys):
    _corpora(tmp_path)
    (tmp_path / "small.txt").write_text("the cat sat\n\nthe dog sat on the log", encoding="utf-8")
    code = main(
        ["diagnose", str(tmp_path / "ref.txt"), str(tmp_path / "small.txt"), "--unit", "paragraph"]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "rare_survival_k1" in text and "95% interval" in text
    assert "missing from the candidate" in text and "frequent" in text
    assert "--match-size" in text  # the corpora differ in size
    matched = diagnose(
        [" ".join(COMMON)] * 40, [" ".join(COMMON)] * 4, n_bootstrap=10, match_size=True
    )
    assert matched["reference"]["tokens"]["value"] == matched["candidate"]["tokens"]["value"]
    assert not any("differ in size" in note for note in matched["notes"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary file"),
        ("naïve".encode("latin-1"), "not valid utf-8"),
        ("naïve".encode("utf-16"), "is UTF-16 text"),
        (b"   \n", "holds no text"),
    ],
)
def test_diagnose_bad_inputs_exit_2_with_one_line(tmp_path, capsys, content, message):
    (tmp_path / "ref.txt").write_text("some real text here", encoding="utf-8")
    bad = tmp_path / "bad.txt"
    if content is not None:
        bad.write_bytes(content)
    assert main(["diagnose", str(tmp_path / "ref.txt"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_diagnose_usage_errors(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("words", encoding="utf-8")
    assert (
        main(["diagnose", str(tmp_path / "a.txt"), str(tmp_path / "a.txt"), "--bootstrap", "0"])
        == 2
    )
    assert "--bootstrap must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["diagnose", str(tmp_path / "a.txt")])
    assert exc.value.code == 2


@pytest.mark.slow
def test_diagnose_as_a_subprocess(tmp_path):
    _corpora(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "collapselab",
            "diagnose",
            str(tmp_path / "ref.txt"),
            str(tmp_path / "cand.txt"),
            "--json",
            "--bootstrap",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["candidate"]["rare_survival_k5"]["value"] == 0.0
    failed = subprocess.run(
        [sys.executable, "-m", "collapselab", "diagnose", str(tmp_path / "ref.txt"), "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: ") and "does not exist" in failed.stderr


def _jsonl(path, docs, column="text", compress=False):
    lines = "".join(json.dumps({column: d}) + "\n" for d in docs).encode()
    path.write_bytes(gzip.compress(lines) if compress else lines)
    return path


def test_diagnose_reads_gzip_columns_per_side_and_splits(tmp_path, capsys):
    reference, candidate = _corpora(tmp_path)
    ref = _jsonl(tmp_path / "ref.jsonl.gz", reference, column="body", compress=True)
    cand = _jsonl(tmp_path / "cand.jsonl", candidate, column="output")
    argv = ["diagnose", str(ref), str(cand), "--json", "--bootstrap", "20"]
    assert main([*argv, "--reference-column", "body", "--candidate-column", "output"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reference"]["documents"]["value"] == 60
    assert out["candidate"]["documents"]["value"] == 60
    # a gzipped plain text file is one document per paragraph by default (--unit auto)
    (tmp_path / "ref.txt.gz").write_bytes(gzip.compress((tmp_path / "ref.txt").read_bytes()))
    assert main(["diagnose", str(tmp_path / "ref.txt.gz"), str(cand), "--json",
                 "--candidate-column", "output", "--bootstrap", "20"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["reference"]["documents"]["value"] == 60


def test_diagnose_reads_a_split_of_a_saved_dataset_dict(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    reference, _ = _corpora(tmp_path)
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": reference}),
            "test": datasets.Dataset.from_dict({"text": reference[:30]}),
        }
    ).save_to_disk(str(tmp_path / "ds"))
    argv = ["diagnose", str(tmp_path / "ds"), str(tmp_path / "cand.txt"), "--json"]
    assert main([*argv, "--split", "test", "--bootstrap", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["reference"]["documents"]["value"] == 30
    assert main([*argv, "--split", "validation"]) == 2
    assert "no split 'validation'" in capsys.readouterr().err


def test_diagnose_warns_when_a_side_has_too_few_documents(tmp_path, capsys):
    _corpora(tmp_path)
    folder = tmp_path / "few"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text(f"the cat sat on mat number {i}", encoding="utf-8")
    assert main(["diagnose", str(tmp_path / "ref.txt"), str(folder), "--bootstrap", "20"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("verdict: ")
    assert "warning: the candidate has 3 document(s)" in text and "--unit paragraph" in text
    # the single reference file was split into its 60 paragraphs: no warning for it
    assert "warning: the reference" not in text
    assert "intervals unreliable" in text.splitlines()[0]


def test_diagnose_streams_jsonl_and_gives_what_the_lists_give(tmp_path, capsys, monkeypatch):
    # A JSONL path is read line by line as the pass goes (never as a list of documents),
    # and the result is the one the same documents give as lists.
    import collapselab.data.user as user
    from collapselab.diagnosis import diagnose_corpora

    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(400)]
    sides = {}
    for name, vocabulary in (("ref", 400), ("cand", 60)):
        docs = [" ".join(rng.choice(words[:vocabulary], size=30)) for _ in range(80)]
        (tmp_path / f"{name}.jsonl").write_text(
            "\n".join(json.dumps({"text": d}) for d in docs), encoding="utf-8"
        )
        sides[name] = docs
    lists = diagnose_corpora(sides["ref"], sides["cand"], bootstrap=30)

    def whole_read(*args, **kwargs):
        raise AssertionError("a JSONL file was read whole")

    monkeypatch.setattr(user, "read_documents", whole_read)
    streamed = diagnose_corpora(tmp_path / "ref.jsonl", tmp_path / "cand.jsonl", bootstrap=30)
    for side in ("reference", "candidate"):
        streamed[side].pop("path")
        assert streamed[side] == lists[side]
    assert streamed["missing_types"] == lists["missing_types"]
