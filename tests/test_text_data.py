"""Text and token data: tokenizer, bundled corpora, ground truths and user files."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collapselab import make
from collapselab import tokenize as tk
from collapselab.core import DataKind
from collapselab.data.text import draw_categorical, shakespeare_plays, strip_markdown
from collapselab.data.user import iter_documents, read_documents
from collapselab.errors import DataError
from collapselab.tokenize import encode_documents, tokenize_words

SAMPLE = "The <unk> don't 'tis o'er a''b x<unk>y rock’n’roll, naïve e\u0301 𝔘𝔫𝔦 _a_ 3.14!"


def test_tokenizer_on_a_known_sentence():
    assert tokenize_words("Don't panic: 'tis O'er!") == [
        "don't",
        "panic",
        ":",
        "'",
        "tis",
        "o'er",
        "!",
    ]
    assert tokenize_words("a <unk> b<unk>c", lowercase=False) == ["a", "<unk>", "b", "<unk>", "c"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=6))
def test_encoder_matches_the_regex_and_reads_its_own_output(docs):
    ids, types, ptr = encode_documents(docs)
    got = [list(types[ids[ptr[d] : ptr[d + 1]]]) for d in range(len(docs))]
    expected = [tokenize_words(d.replace("\x00", "")) for d in docs]
    assert got == expected
    # Joining tokens with spaces and tokenizing again gives the same tokens.
    assert [tokenize_words(" ".join(t)) for t in expected] == expected


def test_encoder_on_edge_cases_and_characters():
    ids, types, ptr = encode_documents([SAMPLE, "", SAMPLE.upper()])
    assert list(types[ids[ptr[0] : ptr[1]]]) == tokenize_words(SAMPLE)
    assert ptr[1] == ptr[2]  # the empty document
    assert list(types[ids[ptr[2] : ptr[3]]]) == tokenize_words(SAMPLE.upper())
    ids, types, ptr = encode_documents(["ab", "Ba"], level="char", lowercase=False)
    assert ["".join(types[ids[ptr[d] : ptr[d + 1]]]) for d in range(2)] == ["ab", "Ba"]
    assert encode_documents([])[2].tolist() == [0]


def test_encoder_across_batches_spells_and_keys_types_as_one_batch(monkeypatch, request):
    # Tiny hash chunks: the corpus is tokenized in many batches, hashed in many chunks
    # and holds tokens longer than two chunks (hashed with powers of their own); the
    # ids, types (in order of first appearance) and keys are those of the regex, and a
    # word has the same key in every call.
    monkeypatch.setattr(tk, "_HASH_CHUNK", 16)
    tk._chunk_powers.cache_clear()  # powers for 32 characters
    request.addfinalizer(tk._chunk_powers.cache_clear)
    docs = [SAMPLE, "", "x" * 70 + " The end", SAMPLE.upper(), "e\u0301 naïve the"] * 3
    ids, types, ptr, keys = tk.encode_documents_keyed(docs)
    expected = [tokenize_words(d) for d in docs]
    assert [list(types[ids[ptr[d] : ptr[d + 1]]]) for d in range(len(docs))] == expected
    assert list(types) == list(dict.fromkeys(t for doc in expected for t in doc))
    ids2, (chars, char_ptr), ptr2, keys2 = tk.encode_documents_spelled(docs)
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_array_equal(ptr2, ptr)
    np.testing.assert_array_equal(keys2, keys)
    assert list(tk.spellings(chars, char_ptr)) == list(types)
    alone = tk.encode_documents_keyed(["the naïve " + "x" * 70])
    by_type = dict(zip(types, keys.tolist(), strict=True))
    assert [by_type[t] for t in alone[1]] == alone[3].tolist()


def test_pydoc_corpus_split_by_document():
    source = make("data", "pydoc", unit="paragraph", test_fraction=0.1)
    docs = source.documents()
    assert 2000 < len(docs) and 400_000 < sum(map(len, docs)) < 520_000
    real = source.load(n=500, rng=np.random.default_rng(0))
    assert real.kind == DataKind.TEXT
    assert len(real.train) == 500 and len(real.test) == round(0.1 * len(docs))
    assert not set(real.train) & set(real.test) or len(set(docs)) < len(docs)
    again = source.load(n=500, rng=np.random.default_rng(0))
    assert again.train == real.train and again.test == real.test
    # Asking for more training documents than there are gives all the rest.
    everything = source.load(n=10**6, rng=np.random.default_rng(0))
    assert len(everything.train) + len(everything.test) == len(docs)


def test_shakespeare_corpus():
    plays = shakespeare_plays()
    assert len(plays) == 38
    total = sum(map(len, plays))
    assert 4_800_000 < total < 5_300_000
    joined = "".join(plays[:5])
    assert "**" not in joined and "\\-" not in joined and "&amp;" not in joined
    assert not any(line.startswith("#") for line in joined.splitlines())
    speeches = make("data", "shakespeare").documents()
    assert len(speeches) > 30_000
    assert any(s.startswith("HAMLET\n") for s in speeches)
    assert strip_markdown("## ACT I\n**BERNARDO**  \n_Enter_ a\\-b &amp; c") == (
        "ACT I\nBERNARDO\nEnter a-b & c"
    )


def test_zipf_truth_and_draws():
    source = make("data", "zipf", exponent=1.5, vocabulary=50, n_test=100)
    p = source.probs()
    k = np.arange(1, 51)
    np.testing.assert_allclose(p, k**-1.5 / np.sum(k**-1.5))
    n = 50_000
    freq = np.bincount(source.draw(n, rng=np.random.default_rng(0)), minlength=50) / n
    assert np.all(np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / n))
    real = source.load(n=300, rng=np.random.default_rng(1))
    assert real.train.dtype == np.int64 and len(real.test) == 100
    np.testing.assert_allclose(real.truth["probs"], p)


def test_draw_categorical_respects_zero_probabilities():
    draws = draw_categorical(np.array([0.0, 0.5, 0.0, 0.5]), 10_000, np.random.default_rng(0))
    assert set(np.unique(draws)) == {1, 3}


def test_wordfreq_source():
    source = make("data", "wordfreq-en", top_n=1000)
    truth = source.load(n=100, rng=np.random.default_rng(0)).truth
    assert truth["words"][:3] == ("the", "to", "and")
    assert truth["probs"].sum() == pytest.approx(1.0)
    assert np.all(np.diff(truth["probs"]) <= 0)


def _write(tmp_path):
    (tmp_path / "a.txt").write_text("First doc.\n\nSecond paragraph.\n", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "x.txt").write_text("one", encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "y.md").write_text("two", encoding="utf-8")
    (folder / ".hidden.txt").write_text("no", encoding="utf-8")
    rows = [{"text": "alpha beta", "id": 1}, {"text": "gamma", "id": 2}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    (tmp_path / "t.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "t.csv").write_text('id,body\n1,"hello, world"\n2,bye\n', encoding="utf-8")
    return folder


def _streamed(path, **kwargs):
    return list(iter_documents(path, **kwargs))


#: Both readers: the whole-file one and the streaming one diagnose uses.
READERS = pytest.mark.parametrize("reader", [read_documents, _streamed], ids=["whole", "stream"])


@READERS
def test_user_files(tmp_path, reader):
    read_documents = reader
    folder = _write(tmp_path)
    assert read_documents(tmp_path / "a.txt") == ["First doc.\n\nSecond paragraph."]
    assert read_documents(tmp_path / "a.txt", unit="paragraph") == [
        "First doc.",
        "Second paragraph.",
    ]
    assert read_documents(tmp_path / "a.txt", unit="line") == ["First doc.", "Second paragraph."]
    assert read_documents(folder) == ["two", "one"]  # sorted paths: sub/y.md before x.txt
    assert read_documents(tmp_path / "t.jsonl") == ["alpha beta", "gamma"]
    assert read_documents(tmp_path / "t.json") == ["alpha beta", "gamma"]
    assert read_documents(tmp_path / "t.csv", column="body") == ["hello, world", "bye"]


def test_user_parquet_and_saved_dataset(tmp_path):
    import pandas as pd

    pd.DataFrame({"text": ["p one", "p two"]}).to_parquet(tmp_path / "t.parquet")
    assert read_documents(tmp_path / "t.parquet") == ["p one", "p two"]
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"content": ["d one", "d two", "d three"]}).save_to_disk(
        str(tmp_path / "ds")
    )
    assert read_documents(tmp_path / "ds", column="content") == ["d one", "d two", "d three"]
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["tr"]}),
            "test": datasets.Dataset.from_dict({"text": ["te"]}),
        }
    ).save_to_disk(str(tmp_path / "dd"))
    assert read_documents(tmp_path / "dd", split="test") == ["te"]
    with pytest.raises(DataError, match="no split 'valid'"):
        read_documents(tmp_path / "dd", split="valid")


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("missing.txt", None, {}, "does not exist"),
        ("bin.txt", b"\x00\x01\x02binary", {}, "binary file"),
        ("latin.txt", "café".encode("latin-1"), {}, "not valid utf-8"),
        ("empty.txt", b"  \n\n ", {}, "holds no text"),
        ("bad.jsonl", b'{"text": "a"}\nnot json\n', {}, "line 2 is not valid JSON"),
        ("col.jsonl", b'{"body": "a"}\n', {}, "no column 'text'"),
        ("num.jsonl", b'{"text": 3}\n', {}, "holds int, not text"),
        ("enc.txt", b"abc", {"encoding": "no-such-codec"}, "unknown text encoding"),
        ("enc.jsonl", b'{"text": "a"}\n', {"encoding": "no-such-codec"}, "unknown text encoding"),
        ("list.jsonl", b'{"text": "a"}\n[1, 2]\n', {}, "line 2 is not a JSON object"),
        ("null.jsonl", b'{"text": null}\n{"text": null}\n', {}, "missing or null in all 2 rows"),
        ("bin.jsonl", b"\x00\x01{}", {}, "binary file"),
        ("bom.jsonl", b"\xff\xfe{\x00}\x00", {}, "UTF-16 text"),
        # the byte offset of the bad byte in the file, as the whole-file reader gives it
        (
            "latin.jsonl",
            b'{"text": "a"}\n{"text": "caf\xe9"}\n',
            {},
            r"not valid utf-8 \(byte 27\)",
        ),
        ("none.jsonl", b"\n  \n", {}, "holds no text"),
    ],
)
@READERS
def test_user_file_errors(tmp_path, name, content, kwargs, message, reader):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        reader(path, **kwargs)


@READERS
def test_jsonl_rows_gzip_bom_blank_lines_and_skipped_rows(tmp_path, reader):
    import gzip

    text = '\ufeff{"text": "one"}\r\n\n{"id": 2}\n{"text": null}\n{"text": "two words"}'
    (tmp_path / "t.jsonl").write_text(text, encoding="utf-8")
    with pytest.warns(UserWarning, match="2 of 4 rows have no 'text'"):
        assert reader(tmp_path / "t.jsonl") == ["one", "two words"]
    (tmp_path / "t.jsonl.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    with pytest.warns(UserWarning, match="2 of 4 rows"):
        assert reader(tmp_path / "t.jsonl.gz", unit="line") == ["one", "two words"]
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip file"):
        reader(tmp_path / "bad.jsonl.gz")


def test_streaming_reads_lines_as_they_are_used_and_bounds_each_line(tmp_path, monkeypatch):
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "first"}\n{"text": "x' + "y" * 5000 + '"}\n', encoding="utf-8")
    monkeypatch.setenv("COLLAPSELAB_MAX_MEMORY", "8000")  # a line may hold 1000 bytes
    stream = iter_documents(path)
    assert next(stream) == "first"  # read before the rest of the file
    with pytest.raises(DataError, match="a line of more than"):
        next(stream)


def test_user_file_in_another_encoding(tmp_path):
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    assert read_documents(tmp_path / "latin.txt", encoding="latin-1") == ["café"]


def test_text_source_reads_user_files(tmp_path):
    docs = [f"document number {i} with words" for i in range(20)]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in docs))
    source = make("data", "text", path=str(tmp_path / "c.jsonl"), test_fraction=0.25)
    real = source.load(n=100, rng=np.random.default_rng(0))
    assert len(real.test) == 5 and len(real.train) == 15
    assert sorted(real.train + real.test) == sorted(docs)
    # Without a path the source reads the bundled pydoc corpus.
    assert make("data", "text").documents() == make("data", "pydoc", unit="document").documents()
    with pytest.raises(DataError, match="does not exist"):
        make("data", "text", path=str(tmp_path / "nope.txt")).load(
            n=5, rng=np.random.default_rng(0)
        )
    (tmp_path / "one.txt").write_text("single")
    with pytest.raises(DataError, match="needs at least 2"):
        make("data", "text", path=str(tmp_path / "one.txt")).load(n=5, rng=np.random.default_rng(0))
