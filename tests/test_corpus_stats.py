"""The streaming engine of ``diagnose`` (collapselab.corpus_stats).

Where no budget is exceeded, its results equal those of the one-shot implementation it
replaced (tests/diagnose_reference.py), value and interval, bit for bit; beyond a
budget, its stated error bounds hold; its fast bootstrap stays close to the exact one.
"""

import gzip
import math

import numpy as np
import pytest

import collapselab.corpus_stats as cs
from collapselab.corpus_stats import BigramCounts, Budget, self_bleu
from collapselab.diagnosis import diagnose
from collapselab.metrics.text import ngram_ids, tokenize_corpus
from diagnose_reference import diagnose as one_shot

WORDS = "the cat sat on the mat and the dog sat on the log while a bird sang".split()


def _corpus(rng, docs, vocabulary, exponent=1.1, length=40):
    """Documents of Zipfian words over ``vocabulary`` made-up words, with punctuation."""
    weights = np.arange(1, vocabulary + 1, dtype=float) ** -exponent
    ids = rng.choice(vocabulary, size=(docs, length), p=weights / weights.sum())
    return [" ".join(f"w{i}" if i % 7 else f"w{i}." for i in row) for row in ids]


def _pydoc(n):
    from collapselab.data.text import _units

    return list(_units("pydoc", "paragraph"))[:n]


def _assert_same(new, old):
    for side in ("reference", "candidate"):
        for metric, value in old[side].items():
            if side == "reference" and metric.startswith("rare_survival"):
                assert new[side][metric] == {"value": None, "lo": None, "hi": None}
                continue
            assert new[side][metric] == value, (side, metric)
    assert new["missing_types"] == old["missing_types"]
    assert new["missing_bigrams"] == old["missing_bigrams"]


CASES = {
    "pydoc": lambda rng: (_pydoc(600), [d[: len(d) // 2] for d in _pydoc(1200)[600:]]),
    "zipf": lambda rng: (_corpus(rng, 300, 3000), _corpus(rng, 200, 300, exponent=1.4)),
    "repeats": lambda rng: (
        [" ".join(WORDS)] * 30 + ["rare words here"],
        [" ".join(WORDS[:8])] * 25,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("match_size", [False, True])
def test_exact_results_equal_the_one_shot_implementation(case, match_size):
    reference, candidate = CASES[case](np.random.default_rng(1))
    kwargs = {"n_bootstrap": 30, "seed": 3, "match_size": match_size, "top": 10}
    new = diagnose(reference, candidate, bootstrap_method="exact", **kwargs)
    _assert_same(new, one_shot(reference, candidate, **kwargs))
    assert new["settings"]["bootstrap_method"] == {"reference": "exact", "candidate": "exact"}


def test_many_batches_and_a_second_process_change_nothing(monkeypatch):
    reference, candidate = CASES["zipf"](np.random.default_rng(2))
    expected = one_shot(reference, candidate, n_bootstrap=20)
    monkeypatch.setattr(cs, "BATCH_CHARS", 700)  # dozens of batches per corpus
    _assert_same(diagnose(reference, candidate, n_bootstrap=20, bootstrap_method="exact"), expected)
    monkeypatch.setattr(cs, "PARALLEL_CHARS", 0)  # tokenized in a forked process
    _assert_same(diagnose(reference, candidate, n_bootstrap=20, bootstrap_method="exact"), expected)
    # read once, as a stream (a JSONL file is read so)
    streamed = diagnose(
        lambda: iter(reference), lambda: iter(candidate), n_bootstrap=20, bootstrap_method="exact"
    )
    _assert_same(streamed, expected)


def test_the_compressed_sample_is_uniform_and_the_same_whatever_the_batches(monkeypatch):
    docs = _pydoc(400)
    monkeypatch.setattr(cs, "GZIP_CHARS", 3000)
    ratios = []
    for batch_chars in (1 << 22, 500, 2000):
        monkeypatch.setattr(cs, "BATCH_CHARS", batch_chars)
        stats, _ = cs.measure_pass(iter(docs), cs.Vocabulary(), Budget())
        ratios.append(stats.raw_bytes / stats.gzip_bytes)
        # the documents of smallest priority that reach GZIP_CHARS, joined in corpus order
        priority = cs._mix(np.arange(len(docs), dtype=np.uint64) ^ np.uint64(0x6219))
        order = np.argsort(priority)
        ends = np.cumsum([len(docs[i]) + 1 for i in order])
        chosen = np.sort(order[: int(np.searchsorted(ends, 3000)) + 1])
        text = " ".join(docs[i] for i in chosen).encode()
        assert stats.raw_bytes == len(text) and 3000 <= len(text) + 1 < 3000 + 2 * max(
            map(len, docs)
        )
        assert stats.gzip_bytes == len(gzip.compress(text, 9, mtime=0))
    assert ratios[0] == ratios[1] == ratios[2]


def test_blocks_of_documents_keep_the_point_values():
    reference, candidate = CASES["zipf"](np.random.default_rng(4))
    old = one_shot(reference, candidate, n_bootstrap=20)
    new = diagnose(reference, candidate, n_bootstrap=20, budget=Budget(type_pairs=2000))
    units = new["settings"]["reference_units"]
    assert units["documents_per_unit"] > 1 and units["units"] < len(reference)
    assert any("blocks of" in note for note in new["notes"])
    for side in ("reference", "candidate"):
        for metric, value in old[side].items():
            if new[side][metric]["value"] is not None:
                assert new[side][metric]["value"] == pytest.approx(value["value"], rel=1e-12)


def test_a_sampled_distinct_count_is_within_its_stated_error():
    # Threshold sampling keeps each distinct 4-gram with probability `rate`: the
    # estimate kept / rate has relative standard error sqrt((1 - rate) / kept).
    z = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        docs = _corpus(rng, 400, 5000, exponent=0.8)
        truth = len(np.unique(ngram_ids(tokenize_corpus(docs), 4)[0]))
        vocabulary = cs.Vocabulary()
        stats, _ = cs.measure_pass(docs, vocabulary, Budget(gram_pairs=2000))
        grams = stats.grams[4]
        assert grams.sampled and 0 < grams.rate < 0.5
        kept = len(grams.distinct)
        estimate = kept / grams.rate
        rse = math.sqrt((1 - grams.rate) / kept)
        z.append((estimate - truth) / (truth * rse))
    z = np.array(z)
    assert np.all(np.abs(z) < 4), z
    assert np.mean(z**2) < 3, z  # about 1 if the stated error is right


def test_the_sketch_error_widens_the_interval_and_is_noted():
    rng = np.random.default_rng(5)
    reference, candidate = _corpus(rng, 300, 5000, exponent=0.8), _corpus(rng, 300, 400)
    exact = diagnose(reference, candidate, n_bootstrap=30)
    sampled = diagnose(reference, candidate, n_bootstrap=30, budget=Budget(gram_pairs=3000))
    assert any("uniform sample" in note for note in sampled["notes"])
    e, s = exact["reference"]["distinct_4"], sampled["reference"]["distinct_4"]
    assert s["hi"] - s["lo"] > e["hi"] - e["lo"]
    assert s["lo"] <= e["value"] <= s["hi"]


def test_misra_gries_counts_are_low_by_at_most_the_stated_error():
    rng = np.random.default_rng(6)
    keys = rng.zipf(1.3, size=50_000).astype(np.uint64)
    counts = BigramCounts(capacity=200)
    for part in np.array_split(keys, 17):
        counts.add(part)
    counts.consolidate()
    true_keys, true_counts = np.unique(keys, return_counts=True)
    truth = dict(zip(true_keys.tolist(), true_counts.tolist(), strict=True))
    assert 0 < counts.error <= len(keys) / (200 + 1)
    for key, count in zip(counts.keys.tolist(), counts.counts.tolist(), strict=True):
        assert truth[key] - counts.error <= count <= truth[key]
    # every key more frequent than the error bound is kept
    assert set(true_keys[true_counts > counts.error].tolist()) <= set(counts.keys.tolist())


def test_the_fast_bootstrap_is_close_to_the_exact_one():
    reference = _pydoc(2000)
    candidate = [d[: len(d) // 3] for d in reference[::2]]
    exact = diagnose(reference, candidate, n_bootstrap=200, bootstrap_method="exact")
    fast = diagnose(reference, candidate, n_bootstrap=200, bootstrap_method="fast")
    for side in ("reference", "candidate"):
        for metric in cs.METRICS:
            e, f = exact[side][metric], fast[side][metric]
            if e["value"] is None:
                continue
            assert f["value"] == e["value"], (side, metric)  # point values are exact
            width_e, width_f = e["hi"] - e["lo"], f["hi"] - f["lo"]
            if metric == "zipf_exponent":  # first order in every count: conservative
                assert width_e <= width_f <= 2 * width_e, (side, metric)
            elif metric == "entropy":
                assert width_f == pytest.approx(width_e, rel=0.1), (side, metric)
            else:
                assert width_f == pytest.approx(width_e, rel=0.05, abs=1e-12), (side, metric)


def test_self_bleu():
    same = ["the cat sat on the mat today"] * 5
    assert self_bleu(same) == pytest.approx(1.0)
    disjoint = [" ".join(f"w{d}x{i}" for i in range(8)) for d in range(5)]
    assert self_bleu(disjoint) < 0.05
    rng = np.random.default_rng(7)
    varied, narrow = _corpus(rng, 50, 2000), _corpus(rng, 50, 30)
    assert self_bleu(narrow) > self_bleu(varied)
    assert math.isnan(self_bleu(["one document"]))


def test_compression_ratio_is_gzip_of_the_joined_text():
    docs = _pydoc(300)
    out = diagnose(docs, docs[:150], n_bootstrap=5)
    text = " ".join(docs).encode()
    assert out["reference"]["compression_ratio"]["value"] == pytest.approx(
        len(text) / len(gzip.compress(text, 9, mtime=0))
    )


def test_type_pairs_in_chunks_equal_one_table_built_at_once():
    # Units spanning several batches, merged two by two along the way (as a pass does,
    # later batches then number their units by the new shift): the chunks, joined, are
    # the table of (unit, type) -> count, sorted by unit then type.
    rng = np.random.default_rng(11)
    docs = np.sort(rng.integers(0, 40, size=3000))
    types = rng.integers(0, 25, size=3000)
    for halve_after in ([], [0], [3, 9], [0, 1, 2]):
        pairs, shift = cs._TypePairs(), 0
        for b, cut in enumerate(np.array_split(np.arange(3000), 17)):
            key, count = cs._count_keys((docs[cut] >> shift) * 100 + types[cut])
            pairs.add((key // 100).astype(np.int32), (key % 100).astype(np.int32), count)
            if b in halve_after:
                pairs.halve()
                shift += 1
        key, count = np.unique((docs >> shift) * 100 + types, return_counts=True)
        assert pairs.size == len(key)
        for got, want in zip(pairs.arrays(), (key // 100, key % 100, count), strict=True):
            np.testing.assert_array_equal(got, want)


def test_the_stable_sort_is_numpys_stable_argsort_and_mix_is_undone():
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**63, size=5000).astype(np.uint64) * np.uint64(2)
    cases = [
        np.zeros(0, np.uint64),
        np.array([7], np.uint64),
        rng.choice(hashes[:300], size=4000),  # spread, with repeats
        rng.integers(0, 50, size=3000).astype(np.uint64),  # small: packed exactly
        # equal high bits, different low bits, repeated: the runs sorted again
        (rng.integers(0, 3, size=2000) << 60 | rng.integers(0, 4, size=2000)).astype(np.uint64),
    ]
    for values in cases:
        order, in_order = cs._sorted_stably(values)
        np.testing.assert_array_equal(order, np.argsort(values, kind="stable"))
        np.testing.assert_array_equal(in_order, values[order])
    edges = np.array([0, 1, 2**64 - 1], np.uint64)
    for values in (hashes, edges):
        np.testing.assert_array_equal(cs._unmix(cs._mix(values)), values)


@pytest.mark.parametrize("repeats", [1, 3, 40])
def test_the_lowered_threshold_is_the_first_gram_past_half_the_budget(repeats):
    # By definition: the n-grams in order of hash, and the first whose pairs, with
    # those before it, exceed half the budget (or the old threshold if none does).
    # Mostly one pair per n-gram (only the last few are sorted), or many.
    rng = np.random.default_rng(repeats)
    for _ in range(200):
        mixed = np.unique(rng.integers(0, 2**63, size=int(rng.integers(1, 200)))).astype(np.uint64)
        mixed = rng.permutation(mixed)
        pairs = rng.integers(1, repeats + 1, size=len(mixed))
        budget = int(rng.integers(1, 3 * pairs.sum() + 2))
        order = np.argsort(mixed)
        past = np.flatnonzero(np.cumsum(pairs[order]) > budget // 2)
        want = mixed[order[past[0]]] if len(past) else cs._MAX64
        assert cs._lowered(mixed, pairs, budget, cs._MAX64) == want


class _PlainGrams:
    """The n-gram sample as defined, plainly: at each consolidation every pair held is
    deduplicated again and, over the budget, the threshold lowered to keep half of it."""

    def __init__(self):
        self.threshold = cs._MAX64
        self.keys, self.units, self.pending = [], [], 0

    def add(self, keys, units, budget):
        if self.threshold != cs._MAX64:
            inside = cs._mix(keys) < self.threshold
            keys, units = keys[inside], units[inside]
        self.keys += keys.tolist()
        self.units += units.tolist()
        self.pending += len(keys)
        held = len(self.keys) - self.pending  # consolidated: one per distinct pair
        if self.pending + held > budget and self.pending >= budget // 4:
            self.consolidate(budget)

    def consolidate(self, budget, shift=0):
        self.pending = 0
        first = {}
        pairs = []
        for k, u in zip(self.keys, self.units, strict=True):
            if (k, u >> shift) not in first:
                first[(k, u >> shift)] = len(pairs)
                pairs.append((k, u >> shift))
        if budget is not None and len(pairs) > budget:
            per_gram = {}
            for k, _ in pairs:
                per_gram[k] = per_gram.get(k, 0) + 1
            grams = np.array(list(per_gram), dtype=np.uint64)
            mixed = cs._mix(grams)
            order = np.argsort(mixed)
            total = np.cumsum([per_gram[k] for k in grams[order].tolist()])
            self.threshold = mixed[order[int(np.searchsorted(total, budget // 2, "right"))]]
            pairs = [(k, u) for k, u in pairs if cs._mix(np.uint64(k)) < self.threshold]
        self.keys, self.units = [k for k, _ in pairs], [u for _, u in pairs]

    def frozen(self):
        code = {}
        for k in self.keys:
            code.setdefault(k, len(code))
        pairs = sorted({(code[k], u) for k, u in zip(self.keys, self.units, strict=True)})
        return np.array(list(code), dtype=np.uint64), [c for c, _ in pairs], [u for _, u in pairs]


@pytest.mark.parametrize(("arrivals", "budget"), [(2**31 - 1, 1200), (5000, 1200), (5000, 10**6)])
def test_the_gram_table_is_the_sample_as_defined(monkeypatch, arrivals, budget):
    # The merged, key-sorted table gives what deduplicating every pair again would: the
    # same thresholds, the same n-grams in order of first appearance, the same pairs,
    # through merges of units and renumbered arrivals (a small limit forces them); and
    # so does one consolidation of everything at the end, within a large budget.
    monkeypatch.setattr(cs, "_ARRIVALS", arrivals)
    rng = np.random.default_rng(3)
    grams, plain = cs._Grams(), _PlainGrams()
    start, shift = 0, 0
    for batch in range(12):
        size = int(rng.integers(200, 900))
        keys = rng.integers(0, 3000, size).astype(np.uint64)  # repeats within and across
        units = np.sort(rng.integers(start, start + 40, size))
        start = int(units[-1])
        for g in (grams, plain):
            g.add(keys, units >> shift, budget)
        if batch in (4, 8) and budget < 10**6:  # units merged two by two
            for g in (grams, plain):
                g.consolidate(None, shift=1)
            shift += 1
        assert grams.threshold == plain.threshold
    grams.freeze(budget)
    plain.consolidate(budget)
    distinct, codes, units = plain.frozen()
    assert grams.sampled == (budget < 10**6) and grams.threshold == plain.threshold
    np.testing.assert_array_equal(grams.distinct, distinct)
    np.testing.assert_array_equal(grams.codes, codes)
    np.testing.assert_array_equal(grams.units, units)
