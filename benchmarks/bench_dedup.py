"""Speed of the ``dedup`` curator with one shared MinHash permutation table.

The curator hashes each document's word shingles with ``datasketch`` MinHash. It
used to build every document's MinHash from its seed, which draws 2 x ``num_perm``
permutation parameters per document; now one table is drawn per call and shared.
Both sides run the same curator on the same documents (1,500 arithmetic statements
of ``curation-shootout``, which oversamples 500 by 3), and the benchmark checks that
they keep the same documents.

Target: per-document tables / shared table >= 3 (the issue measured 3.5-3.8x).

    python benchmarks/bench_dedup.py [--docs 1500]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from collapselab import make
from collapselab.curation.dedup import Dedup
from harness import finish, interleave, parser, repeats, time_ratio


class PerDocumentTables(Dedup):
    """The curator as it was: each document's MinHash drawn from its seed."""

    def _minhash(self, doc: str, table: Any) -> Any:
        from datasketch import MinHash

        from collapselab.tokenize import whitespace_words

        words = whitespace_words(doc)
        grams = {
            " ".join(words[i : i + self.shingle])
            for i in range(max(len(words) - self.shingle + 1, 1))
        }
        h = MinHash(num_perm=self.num_perm, seed=1)
        h.update_batch([g.encode() for g in grams])
        return h


def corpus(n_docs: int, rng: np.random.Generator) -> list[str]:
    """Statements of ``curation-shootout``'s data (``12 + 34 = 46``): what its dedup
    arms curate, 1,500 candidates per generation."""
    source = make("data", "arithmetic", max_operand=99, rare_max=999, rare_fraction=0.1)
    return list(source.load(n=n_docs, rng=rng).train)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--docs", type=int, default=1500)
    args = p.parse_args()
    n_docs = 50 if args.quick else args.docs
    docs = corpus(n_docs, np.random.default_rng(0))
    provenance = np.ones(len(docs), dtype=bool)
    Dedup()(docs[:5], reference=None, rng=None, provenance=provenance[:5])  # warm-up: imports

    def run(curator: Dedup) -> list[str]:
        return curator(docs, reference=None, rng=None, provenance=provenance).kept

    seconds, outputs = interleave(
        {"shared_table": lambda: run(Dedup()), "per_document": lambda: run(PerDocumentTables())},
        repeats(args),
    )
    same = all(
        a == b for a, b in zip(outputs["shared_table"], outputs["per_document"], strict=True)
    )
    assert same, "the two paths kept different documents"
    print(f"{n_docs} documents; both paths keep the same {len(outputs['shared_table'][0])}")
    finish(
        "dedup",
        args,
        [
            time_ratio(
                "per-document / shared table", seconds, "per_document", "shared_table", ">=", 3
            )
        ],
        settings={"documents": n_docs, "num_perm": 128, "shingle": 3},
        seconds=seconds,
        extra={"kept": len(outputs["shared_table"][0]), "identical_kept": same},
    )


if __name__ == "__main__":
    main()
