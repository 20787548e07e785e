"""Capability classifier: what a prompt is trying to extract (schema.CAPABILITIES).

A multinomial logistic regression over hashed character n-grams (language independent: no
tokenizer, no vocabulary), temperature-scaled on held-out wrappers so `capability_score` is a
calibrated probability. Only the head and tail of a prompt are read, since the extraction
instruction wraps the item rather than hiding in its middle. The artifact is plain numpy
(`models/capability.npz`) plus JSON metadata; `python -m distillguard.signals.train_capability`
rebuilds both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from distillguard.signals.base import DistinctCache, per_distinct, prompt_of, prompt_text
from distillguard.signals.ngrams import add_word_products, ngram_columns, text_product

MODEL_DIR = Path(__file__).parent / "models"
HEAD_CHARS = 600
TAIL_CHARS = 300
VECTORIZER: dict[str, Any] = {
    "analyzer": "char_wb",
    "ngram_range": (2, 4),
    "n_features": 2**18,
    "alternate_sign": False,
    "lowercase": True,
}


def clip(text: str) -> str:
    """Head and tail of a prompt: where the instruction around an item lives."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return f"{text[:HEAD_CHARS]} … {text[-TAIL_CHARS:]}"


def vectorizer() -> HashingVectorizer:
    return HashingVectorizer(**VECTORIZER)


class _WordFeatures:
    """Hashed char_wb n-gram counts per distinct word, kept across batches up to `limit` words.

    char_wb n-grams never cross whitespace, so a text's counts are the sum of its words' counts.
    Words repeat far more than texts do, so each is hashed once (`ngrams.ngram_columns`, as the
    vectorizer would). The word table is a CSR matrix whose buffers grow by doubling, so adding a
    word costs its own n-grams rather than a copy of the whole table: the online path classifies
    one prompt at a time.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._clear()

    def _clear(self) -> None:
        self.index: dict[str, int] = {}
        self._indptr = np.zeros(1, dtype=np.int64)
        self._indices = np.empty(0, dtype=np.int32)
        self._data = np.empty(0, dtype=np.float64)
        self._rows = 0
        # Each word's counts times a model's weights (`projection`), for the rows below `_projected`.
        self._weights: np.ndarray | None = None
        self._products = np.zeros((0, 0))
        self._projected = 0

    def _append(self, lengths: np.ndarray, cols: np.ndarray) -> None:
        """Add words whose n-gram columns (`lengths[i]` entries each, in word order) are `cols`; each
        entry counts one (an n-gram occurring twice in a word is two entries)."""
        n, nnz = self._rows, int(self._indptr[self._rows])
        if n + len(lengths) + 1 > len(self._indptr):
            self._indptr = np.resize(self._indptr, max(2 * len(self._indptr), n + len(lengths) + 1))
        if nnz + len(cols) > len(self._indices):
            size = max(2 * len(self._indices), nnz + len(cols))
            self._indices, self._data = np.resize(self._indices, size), np.resize(self._data, size)
        self._indptr[n + 1 : n + len(lengths) + 1] = np.cumsum(lengths) + nnz
        self._indices[nnz : nnz + len(cols)] = cols
        self._data[nnz : nnz + len(cols)] = 1.0
        self._rows += len(lengths)

    def _word_ids(self, words: list[str]) -> np.ndarray:
        # One lookup per word when all are known, the common case (the index is large and cold).
        ids = list(map(self.index.get, words))
        if None in ids:
            new = list(dict.fromkeys(w for w, i in zip(words, ids, strict=True) if i is None))
            if len(self.index) + len(new) > self.limit:
                self._clear()
                new = list(dict.fromkeys(words))
            # The table grows before the index, so an index entry always has its row.
            lengths, cols = ngram_columns(new, VECTORIZER["ngram_range"], VECTORIZER["n_features"])
            self._append(lengths, cols)
            self.index.update(zip(new, range(len(self.index), len(self.index) + len(new)), strict=True))
            ids = list(map(self.index.__getitem__, words))
        return np.array(ids, dtype=np.int64)

    def projection(self, text: str, weights: np.ndarray) -> tuple[np.ndarray, float]:
        """One text's hashed n-gram counts (lower-cased and clipped) times `weights` (n_features x
        classes), and the counts' L2 norm: the vectorizer's row times the weights is their quotient.

        Counts add over words (char_wb n-grams never cross whitespace), so the product is the sum of
        its words' products, each computed once per word and kept: a prompt costs a gather of a few
        hundred small rows instead of one row of the 2**18-row weights per n-gram, which at the
        gateway was the classifier's largest cost (those rows are rarely in cache).
        """
        ids = self._word_ids(text.split())  # the vectorizer's split: whitespace runs
        self._project(weights)
        total, norm = text_product(ids, self._indptr, self._indices, self._products)
        return total, float(norm)

    def _project(self, weights: np.ndarray) -> None:
        """Bring `_products` up to date for `weights` (recomputed from scratch for other weights)."""
        if self._weights is not weights:
            self._weights, self._products, self._projected = weights, np.zeros((0, weights.shape[1])), 0
        if self._projected == self._rows:
            return
        if len(self._products) < self._rows:
            grown = np.zeros((max(2 * len(self._products), self._rows), weights.shape[1]))
            grown[: self._projected] = self._products[: self._projected]
            self._products = grown
        add_word_products(self._projected, self._rows, self._indptr, self._indices, weights, self._products)
        self._projected = self._rows

    def features(self, texts: list[str], canonical: bool = True) -> sp.csr_matrix:
        """L2-normalised hashed counts per text; texts are already lower-cased and clipped. Counts are
        whole numbers, so sums and norms are exact. `canonical` puts each row's columns in the
        vectorizer's order (sorted), which scoring does not need: sorting was a quarter of its time."""
        docs = [t.split() for t in texts]  # the vectorizer's split: whitespace runs
        ids = self._word_ids([w for doc in docs for w in doc])
        n, nnz = self._rows, int(self._indptr[self._rows])
        table = sp.csr_matrix(
            (self._data[:nnz], self._indices[:nnz], self._indptr[: n + 1]),
            shape=(n, int(VECTORIZER["n_features"])),
            copy=False,
        )
        indptr = np.concatenate(([0], np.cumsum(np.fromiter(map(len, docs), np.int64, len(docs)))))
        # (texts x words) @ (words x n-grams): the product's rows hold each n-gram once already.
        out = sp.csr_matrix((np.ones(len(ids)), ids, indptr), shape=(len(docs), n)) @ table
        if canonical:  # the product holds each column once per row already, in first-seen order
            out.sum_duplicates()
        row = np.repeat(np.arange(len(texts)), np.diff(out.indptr))
        norms = np.sqrt(np.bincount(row, weights=out.data * out.data, minlength=len(texts)))
        out.data /= norms[row]
        return sp.csr_matrix(out)


# Up to this many texts, `classify` scores text by text (`CapabilityModel.best_one`).
_FEW = 8
_WORDS = _WordFeatures()


def featurize(texts: list[str], canonical: bool = True) -> sp.csr_matrix:
    """Exactly `vectorizer().transform([clip(t) for t in texts])`, hashing each distinct word once
    (with `canonical=False`, the same matrix with each row's columns unsorted)."""
    return _WORDS.features([clip(t).lower() for t in texts], canonical)


@dataclass(frozen=True)
class CapabilityModel:
    """Linear model over hashed n-grams; `predict_proba` returns (n, classes) calibrated probabilities."""

    classes: tuple[str, ...]
    coef: np.ndarray  # (classes, n_features)
    intercept: np.ndarray
    temperature: float

    @cached_property
    def _weights(self) -> np.ndarray:
        # (n_features, classes), contiguous and float64 like the features: given `coef.T` instead,
        # scipy copies and up-casts all 2**18 rows on every call, which is most of one prompt's cost.
        return np.ascontiguousarray(self.coef.T, dtype=np.float64)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        logits = featurize(texts, canonical=False) @ self._weights
        logits = (logits + self.intercept) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def best_one(self, text: str) -> tuple[str, float]:
        """The most likely class of one text and its probability, as `predict_proba([text])` gives
        them, without a sparse product (whose per-call set-up scales with 2**18 columns): the text's
        normalised counts times the rows of its columns, then the softmax in Python floats, since
        numpy's set-up per call cost more than the arithmetic on a row of seven. The gateway
        classifies one prompt at a time."""
        product, norm = _WORDS.projection(clip(text).lower(), self._weights)
        temperature = self.temperature
        logits = [
            ((p / norm if norm else 0.0) + b) / temperature
            for p, b in zip(product.tolist(), self.intercept.tolist(), strict=True)
        ]
        top = max(logits)
        # The best class's exponential is exp(0) = 1, so its probability is one over the sum.
        return self.classes[logits.index(top)], 1.0 / sum([math.exp(v - top) for v in logits])

    def save(self, directory: Path, metadata: dict[str, Any]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            directory / "capability.npz", coef=self.coef.astype(np.float16), intercept=self.intercept
        )
        meta = {"classes": list(self.classes), "temperature": self.temperature, "vectorizer": VECTORIZER}
        (directory / "capability.json").write_text(json.dumps(meta | metadata, indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path = MODEL_DIR) -> CapabilityModel:
        meta = json.loads((directory / "capability.json").read_text())
        if meta["vectorizer"]["n_features"] != VECTORIZER["n_features"]:
            raise ValueError("capability model was trained with a different vectorizer; retrain it")
        with np.load(directory / "capability.npz") as z:
            coef, intercept = z["coef"].astype(np.float32), z["intercept"].astype(np.float32)
        return cls(tuple(meta["classes"]), coef, intercept, float(meta["temperature"]))


@cache
def shipped_model() -> CapabilityModel:
    return CapabilityModel.load()


def classify(texts: list[str | None]) -> list[dict[str, Any]]:
    """{capability, capability_score} per text; both null where there is no text."""
    rows = [i for i, t in enumerate(texts) if t]
    out: list[dict[str, Any]] = [{"capability": None, "capability_score": None} for _ in texts]
    if 0 < len(rows) <= _FEW:
        for i in rows:
            capability, score = shipped_model().best_one(texts[i])  # type: ignore[arg-type]
            out[i] = {"capability": capability, "capability_score": score}
    elif rows:
        model = shipped_model()
        proba = model.predict_proba([texts[i] for i in rows])  # type: ignore[misc]
        best = proba.argmax(axis=1)
        for i, k, p in zip(rows, best.tolist(), proba.max(axis=1).tolist(), strict=True):
            out[i] = {"capability": model.classes[k], "capability_score": p}
    return out


_CAPABILITIES = DistinctCache(classify)


class CapabilitySignal:
    """Signal: system + user prompt -> capability and its calibrated probability (null without text)."""

    name = "capability"
    columns = pa.schema([("capability", pa.string()), ("capability_score", pa.float64())])

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        found = per_distinct(prompt_text(batch, with_system=True), _CAPABILITIES, pa.struct(self.columns))
        return pa.RecordBatch.from_struct_array(found)

    def row(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return dict(_CAPABILITIES.one(prompt_of(event, with_system=True)))
