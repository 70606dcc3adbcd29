"""Exact and near-duplicate removal."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from ..core import BOOLEAN, Curated, Curator, DataKind, Interval, RealData
from ..errors import require
from ..registry import register
from ..tokenize import whitespace_words


def _datasketch() -> Any:
    return require("datasketch", "dedup", "the dedup curator with near: true")


def _normalize(doc: str) -> str:
    return re.sub(r"\s+", " ", doc.strip().lower())


@register("curator", "dedup")
class Dedup(Curator):
    """Drop exact duplicates and, for documents, near-duplicates (MinHash LSH).

    Documents are compared after lower-casing and collapsing whitespace; near
    duplicates are those whose word ``shingle``-grams have an estimated Jaccard
    similarity of at least ``threshold`` with an earlier kept document
    (``datasketch`` MinHash with ``num_perm`` permutations). Vectors are
    duplicates when equal after rounding to ``decimals``. The first occurrence is
    kept, so the result does not depend on the rng.
    """

    applies_to = frozenset({DataKind.TEXT, DataKind.CONTINUOUS})
    parameter_constraints: ClassVar = {
        "near": [BOOLEAN],
        "threshold": [Interval(0, 1, closed="neither")],
        "num_perm": [Interval(16, None, integer=True)],
        "shingle": [Interval(1, None, integer=True)],
        "decimals": [Interval(0, None, integer=True)],
    }

    def __init__(
        self,
        *,
        near: bool = True,
        threshold: float = 0.8,
        num_perm: int = 128,
        shingle: int = 3,
        decimals: int = 12,
    ) -> None:
        self.near = near
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle = shingle
        self.decimals = decimals

    def _minhash(self, doc: str, table: Any) -> Any:
        """The MinHash of ``doc``'s shingles, with the permutations of ``table``."""
        words = whitespace_words(doc)
        grams = {
            " ".join(words[i : i + self.shingle])
            for i in range(max(len(words) - self.shingle + 1, 1))
        }
        # Passing the shared permutations skips drawing 2 x num_perm parameters per
        # document, which was most of the curator's time; the signature is the same.
        h = _datasketch().MinHash(
            num_perm=self.num_perm, permutations=table.permutations, scheme=table.scheme
        )
        h.update_batch([g.encode() for g in grams])
        return h

    def __call__(
        self,
        items: Any,
        *,
        reference: RealData,
        rng: np.random.Generator,
        provenance: np.ndarray,
        model: Any = None,
        model_0: Any = None,
    ) -> Curated:
        n = len(items)
        keep = np.zeros(n, dtype=bool)
        if isinstance(items, np.ndarray):
            rows = np.round(items.reshape(n, -1), self.decimals)
            _, first = np.unique(rows, axis=0, return_index=True)
            keep[first] = True
            exact = int(n - keep.sum())
            near = 0
        else:
            seen: set[str] = set()
            lsh = table = None
            if self.near:
                lsh = _datasketch().MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
                # One permutation table (datasketch's seed 1) for every document.
                table = _datasketch().MinHash(num_perm=self.num_perm, seed=1)
            exact = near = 0
            for i, doc in enumerate(items):
                key = _normalize(doc)
                if key in seen:
                    exact += 1
                    continue
                seen.add(key)
                if lsh is not None:
                    signature = self._minhash(key, table)
                    if lsh.query(signature):
                        near += 1
                        continue
                    lsh.insert(str(i), signature)
                keep[i] = True
        stats = {
            "exact_duplicates": exact / n if n else 0.0,
            "near_duplicates": near / n if n else 0.0,
        }
        return Curated.of(items, keep, stats)
