"""An n-gram (Markov) model of text at the word or character level.

``order`` is the Markov order: the number of previous tokens the next one depends
on (a word 3-gram has order 2, like markovify's ``state_size=2``). Smoothing:

* ``none``: the maximum-likelihood estimate, the setting that collapses: a phrasing
  the model did not emit is gone for good. A context never seen in training has no
  MLE; ``log_prob`` gives its next token probability 0 (``-inf``). In ``free`` mode
  such a context is never reached: every (order+1)-gram the model emits, its end
  included, occurs in its training data, as in a pure Markov chain (markovify).
* ``add-k``: ``(c(ctx, w) + k) / (c(ctx) + k V)`` over the model's vocabulary,
  including an unknown-word class that scores tokens never seen in training.
* ``kneser-ney``: interpolated Kneser–Ney with absolute discount ``D``: the top order
  uses counts, lower orders continuation counts, and the base is uniform.

Documents are generated in one of two modes: ``free`` runs from the document start
until the model samples the end-of-document token, so document lengths come from
the model itself (a document still going after ``max_length`` tokens is cut there);
the end token is decoded (temperature/top-k/top-p) like any other. ``prefix``
continues the first ``prefix_length`` tokens of the training documents by
``continuation_length`` tokens, as Shumailov et al. (2024) prompted with real
blocks. A generated document keeps its prefix, so under ``replace`` every
generation continues the same real prefixes. Because that length is fixed by the
experiment, the end token is never sampled in ``prefix`` mode: each next-token
distribution is conditioned on not ending (then decoded), and an unsmoothed model
in a context seen only at a document's end backs off to the longest suffix that
has a continuation. :meth:`NGram.complete` continues given prompts as ``free`` mode
does (held-out task prompts such as ``37+48=``).

Implementation: tokens are integer ids; the context of every position is encoded
level by level (``code_j = rank(code_{j-1} * V + token)``), so each order's table
is a CSR matrix (sorted context codes -> continuation ids and counts). All
documents are generated together, one vectorized step per token position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from ..core import BOOLEAN, NONE, DataKind, GenerativeModel, Interval, Options
from ..decoding import DISCRETE_CONTROLS, Decoding
from ..errors import DataError
from ..registry import register
from ..tokenize import UNK_WORD, encode_documents
from .lm import documents

END, UNK, BOS = 0, 1, 2
UNK_CHAR = "\ufffd"
#: Dense next-token rows computed at once on the smoothed, decoded path (memory bound).
_DENSE_CELLS = 2_000_000


@dataclass
class _Level:
    """The table of one order: contexts of ``j`` tokens and their continuations."""

    keys: np.ndarray  # sorted context codes (code_{j-1} * V + oldest token); row r = keys[r]
    row_ptr: np.ndarray  # (R + 1,) entry range of each row
    entry_keys: np.ndarray  # (E,) sorted row * V + token, to look entries up
    tokens: np.ndarray  # (E,) continuation ids, ascending within each row
    counts: np.ndarray  # (E,) raw counts
    weights: np.ndarray  # (E,) the counts, or continuation counts below the top order (KN)
    #: Top order of an unsmoothed model: the row of the context that follows each entry
    #: (-1 after END), so free-running generation walks rows without re-encoding contexts.
    successor: np.ndarray | None = None


def sorted_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True, return_counts=True)`` of int64 keys, by
    hashing (pandas) and sorting only the distinct keys: several times faster."""
    codes, uniques = pd.factorize(values, sort=True)
    counts = np.bincount(codes, minlength=len(uniques))
    return np.asarray(uniques, dtype=np.int64), codes, counts


def _first_index(codes: np.ndarray, n_unique: int) -> np.ndarray:
    """Position of the first occurrence of each code."""
    first = np.full(n_unique, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return first


def _row_sums(values: np.ndarray, row_ptr: np.ndarray) -> np.ndarray:
    cum = np.concatenate([[0.0], np.cumsum(values, dtype=float)])
    return cum[row_ptr[1:]] - cum[row_ptr[:-1]]


def _draw_in_rows(
    cum0: np.ndarray, row_ptr: np.ndarray, rows: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Entry index drawn in each row in proportion to its weights (``cum0``: cumulative
    weights with a leading 0), by inverse CDF with the uniforms ``u``."""
    start, stop = row_ptr[rows], row_ptr[rows + 1]
    idx = start.copy()
    # A row with one continuation needs no search (most rows of a sparse corpus).
    many = np.flatnonzero(stop - start > 1)
    s, e = start[many], stop[many]
    lo, hi = cum0[s], cum0[e]
    found = np.searchsorted(cum0, lo + u[many] * (hi - lo), side="right") - 1
    idx[many] = np.clip(found, s, e - 1)
    return idx


@register("model", "ngram")
class NGram(GenerativeModel):
    """Word- or character-level Markov model of order ``order``.

    Parameters
    ----------
    order : int, default 2
        Number of previous tokens in the context (2: a 3-gram model).
    level : {"word", "char"}, default "word"
    smoothing : {"none", "add-k", "kneser-ney"}, default "none"
    pseudocount : float, default 1.0
        k of add-k smoothing.
    discount : float, default 0.75
        D of Kneser–Ney smoothing.
    lowercase : bool, default True
        Lowercase the text before tokenizing.
    mode : {"free", "prefix"}, default "free"
    prefix_length : int, default 64
        Tokens of each training document given as the prompt in ``prefix`` mode.
    continuation_length : int, default 64
        Tokens generated after each prefix in ``prefix`` mode.
    max_length : int, optional
        In ``free`` mode (and :meth:`complete`), a document that has not ended after
        this many tokens is cut there. By default ten times the longest training
        document, which a fitted chain almost never reaches.
    """

    kind = DataKind.TEXT
    decoding_controls: ClassVar[frozenset[str]] = DISCRETE_CONTROLS
    provides: ClassVar[frozenset[str]] = frozenset(
        {
            "token_log_probs",
            "document_token_log_probs",
            "type_probs",
            "next_token_probs",
            "complete",
        }
    )
    parameter_constraints: ClassVar = {
        "order": [Interval(0, 12, integer=True)],
        "level": [Options(("word", "char"))],
        "smoothing": [Options(("none", "add-k", "kneser-ney"))],
        "pseudocount": [Interval(0, None, closed="neither")],
        "discount": [Interval(0, 1, closed="neither")],
        "lowercase": [BOOLEAN],
        "mode": [Options(("free", "prefix"))],
        "prefix_length": [Interval(1, None, integer=True)],
        "continuation_length": [Interval(1, None, integer=True)],
        "max_length": [NONE, Interval(1, None, integer=True)],
    }

    def __init__(
        self,
        *,
        order: int = 2,
        level: str = "word",
        smoothing: str = "none",
        pseudocount: float = 1.0,
        discount: float = 0.75,
        lowercase: bool = True,
        mode: str = "free",
        prefix_length: int = 64,
        continuation_length: int = 64,
        max_length: int | None = None,
    ) -> None:
        self.order = order
        self.level = level
        self.smoothing = smoothing
        self.pseudocount = pseudocount
        self.discount = discount
        self.lowercase = lowercase
        self.mode = mode
        self.prefix_length = prefix_length
        self.continuation_length = continuation_length
        self.max_length = max_length

    # -- tokens ------------------------------------------------------------------

    def _padded(
        self, docs: list[str], vocab: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """All documents as one id array (``order`` BOS pads, the tokens, END per document)
        and the vocabulary: built here when ``vocab`` is None, else the given one with
        unknown tokens mapped to UNK."""
        ids, types, doc_ptr = encode_documents(docs, level=self.level, lowercase=self.lowercase)
        unk = UNK_CHAR if self.level == "char" else UNK_WORD
        if vocab is None:
            is_unk = types == unk
            vocab = np.concatenate([np.array(["</s>", unk, "<s>"], dtype=object), types[~is_unk]])
            lookup = np.cumsum(~is_unk) + 2  # ids follow the three special tokens
            lookup[is_unk] = UNK
        else:
            lookup = pd.Index(vocab, dtype=object).get_indexer(types)
            lookup[lookup < 0] = UNK
        ids = lookup[ids]
        n_docs = len(doc_ptr) - 1
        stride = self.order + 1
        doc_of = np.repeat(np.arange(n_docs), np.diff(doc_ptr))
        x = np.full(len(ids) + n_docs * stride, BOS, dtype=np.int64)
        x[np.arange(len(ids)) + doc_of * stride + self.order] = ids
        x[doc_ptr[1:] + np.arange(n_docs) * stride + self.order] = END
        return x, vocab

    # -- fitting -----------------------------------------------------------------

    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        x, vocab = self._padded(documents(data))
        v = len(vocab)
        ends = np.flatnonzero(x == END)
        targets = np.flatnonzero(x != BOS)
        tokens = x[targets].astype(np.int32)  # the token at every target position

        # Context codes of every target position, one order at a time (int32: they index
        # positions, and a corpus's arrays dominate the memory a fit needs).
        level_codes: list[np.ndarray | None] = [None]  # order 0: one empty context
        level_keys = [np.zeros(1, dtype=np.int64)]
        for j in range(1, self.order + 1):
            older = x[targets - j]
            if level_codes[-1] is not None:
                older += level_codes[-1].astype(np.int64) * v
            keys, codes, _ = sorted_unique(older)
            level_codes.append(codes.astype(np.int32))
            level_keys.append(keys)
            del older, codes
        if self.mode == "prefix":
            self._store_prefixes(x, ends)
        del x, targets

        # Tables from the top order down: Kneser-Ney's continuation counts at order j
        # come from the distinct entries of order j + 1.
        kneser_ney = self.smoothing == "kneser-ney"
        self.levels_ = [None] * (self.order + 1)
        upper: tuple[np.ndarray, np.ndarray] | None = None  # (entry keys, entry of position)
        for j in range(self.order, -1, -1):
            context = level_codes[j]
            if context is None:
                all_counts = np.bincount(tokens, minlength=v)
                entry_keys = np.flatnonzero(all_counts).astype(np.int64)
                counts = all_counts[entry_keys]
                entry_of = None
            else:
                entry_keys, entry_of, counts = sorted_unique(context.astype(np.int64) * v + tokens)
            row_ptr = np.searchsorted(entry_keys // v, np.arange(len(level_keys[j]) + 1))
            weights = counts  # replaced by continuation counts below the top order (KN)
            if kneser_ney and upper is not None:
                # Continuation count of (ctx, w): distinct tokens seen before it, i.e. the
                # number of distinct order-(j+1) entries whose suffix it is.
                first = _first_index(upper[1], len(upper[0]))
                suffix = tokens[first].astype(np.int64)
                if context is not None:
                    suffix += context[first].astype(np.int64) * v
                weights = np.bincount(
                    np.searchsorted(entry_keys, suffix), minlength=len(entry_keys)
                ).astype(float)
            successor = None
            if self.smoothing == "none" and j == self.order:
                successor = np.full(len(entry_keys), -1, dtype=np.int64)
                going_on = np.flatnonzero(tokens[:-1] != END)
                if context is None:
                    successor[np.searchsorted(entry_keys, tokens[going_on])] = 0
                else:
                    successor[entry_of[going_on]] = context[going_on + 1]
            self.levels_[j] = _Level(
                level_keys[j],
                row_ptr,
                entry_keys,
                (entry_keys % v).astype(np.int32),
                counts,
                weights,
                successor,
            )
            upper = (entry_keys, entry_of) if kneser_ney and entry_of is not None else None
            del entry_of
        self.vocab_ = vocab
        longest = int((np.diff(np.concatenate([[-1], ends])) - 1 - self.order).max())
        self.max_length_ = self.max_length or 10 * max(longest, 1)
        self.unigram_ = self._unigram()
        return self

    def _store_prefixes(self, x: np.ndarray, ends: np.ndarray) -> None:
        doc_starts = np.concatenate([[0], ends[:-1] + 1]) + self.order
        keep = np.minimum(ends - doc_starts, self.prefix_length)
        self.prefix_ptr_ = np.concatenate([[0], np.cumsum(keep)])
        take = np.repeat(doc_starts, keep) + (
            np.arange(keep.sum()) - np.repeat(self.prefix_ptr_[:-1], keep)
        )
        self.prefix_tokens_ = x[take]

    def _unigram(self) -> np.ndarray:
        """The model's distribution of emitted tokens at order 0 (END and BOS excluded)."""
        level = self.levels_[0]
        v = len(self.vocab_)
        dense = np.zeros(v)
        if self.smoothing == "kneser-ney":
            dense[level.tokens] = self._kn_factor(level, 0, level.weights)
            w_total, distinct = level.weights.sum(), len(level.tokens)
            dense += self.discount * distinct / w_total / (v - 1)
        else:
            dense[level.tokens] = level.counts
            if self.smoothing == "add-k":
                dense += self.pseudocount
        dense[[END, BOS]] = 0.0
        return dense / dense.sum()

    def _kn_factor(self, level: _Level, row: int, w: np.ndarray) -> np.ndarray:
        total = level.weights[level.row_ptr[row] : level.row_ptr[row + 1]].sum()
        return np.maximum(w - self.discount, 0.0) / total

    # -- contexts ----------------------------------------------------------------

    def _context_rows(self, history: np.ndarray) -> list[np.ndarray]:
        """Row of each context (``history`` (m, order), most recent last) at every order;
        -1 where the context was never seen."""
        v = len(self.vocab_)
        m = history.shape[0]
        code = np.zeros(m, dtype=np.int64)
        rows = [code]
        for j in range(1, self.order + 1):
            keys = self.levels_[j].keys
            key = code * v + history[:, -j]
            pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            code = np.where((code >= 0) & (keys[pos] == key), pos, -1)
            rows.append(code)
        return rows

    def _entry_weight(
        self, j: int, rows: np.ndarray, tokens: np.ndarray, values: np.ndarray
    ) -> np.ndarray:
        """``values`` of entry (row, token) at order ``j`` (0 where absent or row < 0)."""
        entry_keys = self.levels_[j].entry_keys
        key = rows * len(self.vocab_) + tokens
        pos = np.minimum(np.searchsorted(entry_keys, key), len(entry_keys) - 1)
        found = (rows >= 0) & (entry_keys[pos] == key)
        return np.where(found, values[pos], 0.0)

    # -- scoring -----------------------------------------------------------------

    def _token_probs(self, x: np.ndarray) -> np.ndarray:
        targets = np.flatnonzero(x != BOS)
        tokens = x[targets]
        history = (
            np.stack([x[targets - k] for k in range(self.order, 0, -1)], axis=1)
            if self.order
            else np.zeros((len(targets), 0), dtype=np.int64)
        )
        rows = self._context_rows(history)
        v_pred = len(self.vocab_) - 1  # every id but BOS can be emitted
        top = self.levels_[self.order]
        top_total = _row_sums(top.counts, top.row_ptr)
        r = rows[self.order]
        c = self._entry_weight(self.order, r, tokens, top.counts.astype(float))
        total = np.where(r >= 0, top_total[np.maximum(r, 0)], 0.0)
        if self.smoothing == "none":
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(total > 0, c / np.where(total > 0, total, 1.0), 0.0)
        if self.smoothing == "add-k":
            k = self.pseudocount
            return (c + k) / (total + k * v_pred)
        p = np.full(len(tokens), 1.0 / v_pred)
        for j in range(self.order + 1):
            level = self.levels_[j]
            w_total = _row_sums(level.weights, level.row_ptr)
            distinct = np.diff(level.row_ptr).astype(float)
            rj = rows[j]
            seen = rj >= 0
            safe = np.maximum(rj, 0)
            w = self._entry_weight(j, rj, tokens, level.weights)
            with np.errstate(invalid="ignore", divide="ignore"):
                mixed = (
                    np.maximum(w - self.discount, 0.0) + self.discount * distinct[safe] * p
                ) / w_total[safe]
            p = np.where(seen, mixed, p)
        return p

    def token_log_probs(self, data: Any) -> np.ndarray:
        """Log-probability of every token of every document (its END included), in order."""
        x = self._padded(documents(data), self.vocab_)[0]
        with np.errstate(divide="ignore"):
            return np.log(self._token_probs(x))

    def document_token_log_probs(self, data: Any) -> list[np.ndarray]:
        """Per document, the log-probability of each of its tokens and its END."""
        x = self._padded(documents(data), self.vocab_)[0]
        with np.errstate(divide="ignore"):
            logp = np.log(self._token_probs(x))
        ends = np.flatnonzero(x[x != BOS] == END)  # every document ends with one END
        return np.split(logp, ends[:-1] + 1)

    def log_prob(self, data: Any) -> np.ndarray:
        return np.array([lp.sum() for lp in self.document_token_log_probs(data)])

    def type_probs(self, types: Any) -> np.ndarray:
        """The model's unigram probability of each word type (case-folded like the metrics).

        Character models have no word types: NaN.
        """
        types = list(types)
        if self.level == "char":
            return np.full(len(types), np.nan)
        folded: dict[str, float] = {}
        for word, p in zip(self.vocab_, self.unigram_, strict=True):
            if p > 0:
                key = word.lower()
                folded[key] = folded.get(key, 0.0) + p
        return np.array([folded.get(str(t), 0.0) for t in types], dtype=float)

    # -- sampling ----------------------------------------------------------------

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> list[str]:
        resolved = Decoding.from_config(decoding)
        if resolved is not None and resolved.is_identity:
            resolved = None
        history = np.full((n, self.order), BOS, dtype=np.int64)
        if self.mode == "free":
            flat, starts, lengths = self._generate(
                history, rng, resolved, steps=self.max_length_, until_end=True
            )
            return self._texts(flat, starts, lengths)
        n_prefixes = len(self.prefix_ptr_) - 1
        which = np.arange(n) % n_prefixes
        prompt = [self.prefix_tokens_[self.prefix_ptr_[i] : self.prefix_ptr_[i + 1]] for i in which]
        for i, p in enumerate(prompt):
            if self.order and len(p):
                tail = p[-self.order :]
                history[i, self.order - len(tail) :] = tail
        flat, starts, lengths = self._generate(
            history, rng, resolved, steps=self.continuation_length, until_end=False
        )
        sep = self._separator()
        return [
            sep.join([*self.vocab_[p].tolist(), text]) if len(p) else text
            for p, text in zip(prompt, self._texts(flat, starts, lengths), strict=True)
        ]

    def complete(
        self, prompts: Sequence[str], *, rng: np.random.Generator, decoding: Any = None
    ) -> list[str]:
        """The model's continuation of each prompt, up to the end token it samples.

        Each prompt is tokenized as a document's beginning (so ``"37+48="`` is a
        statement whose result the model writes); the continuation runs as in ``free``
        mode, whatever :attr:`mode` is, and is cut after ``max_length`` tokens.
        """
        resolved = Decoding.from_config(decoding)
        if resolved is not None and resolved.is_identity:
            resolved = None
        x = self._padded(documents(prompts), self.vocab_)[0]
        ends = np.flatnonzero(x == END)  # the BOS pads keep every window inside its prompt
        history = np.stack([x[ends - k] for k in range(self.order, 0, -1)], axis=1).reshape(
            len(ends), self.order
        )
        flat, starts, lengths = self._generate(
            history, rng, resolved, steps=self.max_length_, until_end=True
        )
        return self._texts(flat, starts, lengths)

    def _separator(self) -> str:
        return "" if self.level == "char" else " "

    def _texts(self, flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> list[str]:
        words = self.vocab_[flat].tolist()  # one lookup for the whole output
        sep = self._separator()
        return [sep.join(words[a : a + m]) for a, m in zip(starts, lengths, strict=True)]

    def _generate(
        self,
        history: np.ndarray,
        rng: np.random.Generator,
        decoding: Decoding | None,
        *,
        steps: int,
        until_end: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token ids of all documents continued from ``history`` (m, order):
        ``flat[starts[d]:starts[d] + lengths[d]]`` is document ``d``. All documents
        advance together, one position a step, for at most ``steps`` steps.

        ``until_end``: a document ends when it draws END (the model decides its
        length; an unsmoothed model then only walks n-grams it was fitted on).
        Otherwise every document gets ``steps`` tokens and each draw is conditioned on
        not ending. An unsmoothed model walks its top-order rows through their
        successors; only a document in an unseen context or one that only ends (which
        happens only when ending is excluded) takes the general path (backoff).
        """
        m = history.shape[0]
        docs = np.arange(m)  # the documents still going, in order
        hist = history.copy()
        tables = self._sampling_tables(decoding, until_end)
        walk = self.smoothing == "none"
        if walk:
            top, top_table = self.levels_[self.order], tables[self.order]
            # Row -1 (an unseen context) reads the appended False: it takes the slow path.
            live = np.append(top_table["total"] > 0, False)
            row = self._context_rows(hist)[self.order]
        emitted_docs, emitted_tokens = [], []
        for _ in range(steps):
            if not len(docs):
                break
            if walk:
                fast = live[row]
                slow = ~fast
                tokens = np.empty(len(docs), dtype=np.int64)
                e = _draw_in_rows(
                    top_table["cum0"], top.row_ptr, row[fast], rng.random(int(fast.sum()))
                )
                tokens[fast] = top.tokens[e]
                row[fast] = top.successor[e]
                if slow.any():
                    tokens[slow] = self._draw(hist[slow], rng, tables, decoding, until_end)
            else:
                tokens = self._draw(hist, rng, tables, decoding, until_end)
            going = tokens != END if until_end else np.ones(len(docs), dtype=bool)
            emitted_docs.append(docs[going])
            emitted_tokens.append(tokens[going])
            if self.order:
                hist[:, :-1] = hist[:, 1:]
                hist[:, -1] = tokens
            if walk and slow.any():
                row[slow] = self._context_rows(hist[slow])[self.order]
            if not going.all():
                docs, hist = docs[going], hist[going]
                if walk:
                    row = row[going]
        owner = np.concatenate([np.zeros(0, dtype=np.int64), *emitted_docs])
        flat = np.concatenate([np.zeros(0, dtype=np.int64), *emitted_tokens])
        order = np.argsort(owner, kind="stable")  # by document, each in step order
        lengths = np.bincount(owner, minlength=m)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return flat[order], starts, lengths

    def _sampling_tables(
        self, decoding: Decoding | None, until_end: bool
    ) -> list[dict[str, np.ndarray]]:
        """Per order: cumulative sampling weights and, for smoothed models, the
        probability of using this order (rather than a lower one)."""
        tables = []
        for level in self.levels_:
            if self.smoothing == "none":
                w = level.counts.astype(float)
                if not until_end:  # condition on not ending: END entries get no weight
                    w = np.where(level.tokens == END, 0.0, w)
                total = _row_sums(w, level.row_ptr)
                if decoding is not None:
                    w = _decode_rows(w, level.row_ptr, total, decoding)
                tables.append({"cum0": np.concatenate([[0.0], np.cumsum(w)]), "total": total})
            elif self.smoothing == "add-k":
                w = level.counts.astype(float)
                total = _row_sums(w, level.row_ptr)
                k_mass = self.pseudocount * (len(self.vocab_) - 1)
                tables.append(
                    {
                        "cum0": np.concatenate([[0.0], np.cumsum(w)]),
                        "stay": total / (total + k_mass),
                    }
                )
            else:
                w = np.maximum(level.weights - self.discount, 0.0)
                w_total = _row_sums(level.weights, level.row_ptr)
                stay = _row_sums(w, level.row_ptr) / w_total
                tables.append({"cum0": np.concatenate([[0.0], np.cumsum(w)]), "stay": stay})
        return tables

    def _draw(
        self,
        hist: np.ndarray,
        rng: np.random.Generator,
        tables: list[dict[str, np.ndarray]],
        decoding: Decoding | None,
        until_end: bool,
    ) -> np.ndarray:
        rows = self._context_rows(hist)
        m = hist.shape[0]
        if self.smoothing == "none":
            tokens = np.empty(m, dtype=np.int64)
            pending = np.ones(m, dtype=bool)
            u = rng.random(m)
            for j in range(self.order, -1, -1):
                r = rows[j]
                ok = pending & (r >= 0)
                ok[ok] = tables[j]["total"][r[ok]] > 0
                if ok.any():
                    level = self.levels_[j]
                    e = _draw_in_rows(tables[j]["cum0"], level.row_ptr, r[ok], u[ok])
                    tokens[ok] = level.tokens[e]
                    pending &= ~ok
            if pending.any():
                raise DataError("the model has no token to emit: it was fitted on empty documents")
            return tokens
        if decoding is not None:
            return self._draw_dense(rows, rng, decoding, until_end)
        if until_end:
            return self._draw_mixture(rows, rng, tables)
        tokens = np.full(m, END, dtype=np.int64)
        todo = np.arange(m)
        for _ in range(10_000):  # rejection of END: P(END) < 1 under any smoothing
            tokens[todo] = self._draw_mixture([r[todo] for r in rows], rng, tables)
            todo = todo[tokens[todo] == END]
            if not len(todo):
                return tokens
        raise RuntimeError("could not draw a token other than the end of the document")

    def _draw_mixture(
        self, rows: list[np.ndarray], rng: np.random.Generator, tables: list[dict[str, np.ndarray]]
    ) -> np.ndarray:
        m = len(rows[0])
        tokens = np.empty(m, dtype=np.int64)
        pending = np.ones(m, dtype=bool)
        lowest = self.order if self.smoothing == "add-k" else 0
        for j in range(self.order, lowest - 1, -1):
            r = rows[j]
            here = pending & (r >= 0)
            here[here] = rng.random(int(here.sum())) < tables[j]["stay"][r[here]]
            if here.any():
                level = self.levels_[j]
                e = _draw_in_rows(
                    tables[j]["cum0"], level.row_ptr, r[here], rng.random(int(here.sum()))
                )
                tokens[here] = level.tokens[e]
                pending &= ~here
        # The rest: uniform over every id but BOS.
        z = rng.integers(0, len(self.vocab_) - 1, size=int(pending.sum()))
        tokens[pending] = z + (z >= BOS)
        return tokens

    def next_token_probs(self, context: Sequence[str]) -> np.ndarray:
        """P(next token | the last ``order`` tokens of ``context``) over :attr:`vocab_`
        (END included), as ``log_prob`` scores it: all zeros for an unsmoothed model
        in a context it never saw. Tokens are given as the model splits text."""
        tokens = [BOS] * self.order + [
            int(i) if i >= 0 else UNK for i in pd.Index(self.vocab_).get_indexer(list(context))
        ]
        history = np.array([tokens[len(tokens) - self.order :]], dtype=np.int64)
        return self._dense_probs(self._context_rows(history))[0]

    def _dense_probs(self, rows: list[np.ndarray]) -> np.ndarray:
        """Exact next-token distributions (m, V) for given contexts (rows per order)."""
        m, v = len(rows[0]), len(self.vocab_)
        v_pred = v - 1
        if self.smoothing == "none":
            top = self.levels_[self.order]
            dense = _scatter_rows(top, rows[self.order], top.counts.astype(float), v)
            total = dense.sum(axis=1, keepdims=True)
            return np.divide(dense, total, out=np.zeros_like(dense), where=total > 0)
        if self.smoothing == "add-k":
            top = self.levels_[self.order]
            dense = _scatter_rows(top, rows[self.order], top.counts.astype(float), v)
            p = (dense + self.pseudocount) / (
                dense.sum(axis=1, keepdims=True) + self.pseudocount * v_pred
            )
        else:
            p = np.full((m, v), 1.0 / v_pred)
            for j, level in enumerate(self.levels_):
                r = rows[j]
                dense = _scatter_rows(level, r, level.weights, v)
                w_total = dense.sum(axis=1, keepdims=True)
                distinct = (dense > 0).sum(axis=1, keepdims=True)
                with np.errstate(invalid="ignore", divide="ignore"):
                    mixed = (
                        np.maximum(dense - self.discount, 0.0) + self.discount * distinct * p
                    ) / w_total
                p = np.where((r >= 0)[:, None], mixed, p)
        p[:, BOS] = 0.0
        return p

    def _draw_dense(
        self,
        rows: list[np.ndarray],
        rng: np.random.Generator,
        decoding: Decoding,
        until_end: bool,
    ) -> np.ndarray:
        stacked = np.stack(rows, axis=1)
        unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        v = len(self.vocab_)
        chunk = max(1, _DENSE_CELLS // v)
        tokens = np.empty(len(inverse), dtype=np.int64)
        u = rng.random(len(inverse))
        for lo in range(0, len(unique), chunk):
            part = unique[lo : lo + chunk]
            p = self._dense_probs([part[:, j] for j in range(part.shape[1])])
            if not until_end:
                p[:, END] = 0.0  # conditioned on not ending, then decoded
            p = decoding.apply(p)
            cdf = np.cumsum(p, axis=1)
            docs = np.flatnonzero((inverse >= lo) & (inverse < lo + len(part)))
            local = inverse[docs] - lo
            pos = (cdf[local] <= (u[docs] * cdf[local, -1])[:, None]).sum(axis=1)
            tokens[docs] = np.minimum(pos, v - 1)
        return tokens


def _scatter_rows(level: _Level, rows: np.ndarray, values: np.ndarray, v: int) -> np.ndarray:
    """Dense (m, V) rows of a CSR table (zeros for rows < 0)."""
    dense = np.zeros((len(rows), v))
    seen = np.flatnonzero(rows >= 0)
    if len(seen):
        r = rows[seen]
        sizes = level.row_ptr[r + 1] - level.row_ptr[r]
        owner = np.repeat(seen, sizes)
        entries = np.repeat(level.row_ptr[r], sizes) + (
            np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        )
        dense[owner, level.tokens[entries]] = values[entries]
    return dense


def _decode_rows(
    w: np.ndarray, row_ptr: np.ndarray, total: np.ndarray, decoding: Decoding
) -> np.ndarray:
    """Decoded weights per row; rows without weight (a context that only ends) stay empty."""
    live = np.repeat(total > 0, np.diff(row_ptr))
    safe = np.where(live, w, 1.0)  # decode every row, then blank the dead ones
    return np.where(live, decoding.apply_segments(safe, row_ptr), 0.0)
