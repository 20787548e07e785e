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
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import mmh3
import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from distillguard.signals.base import DistinctCache, per_distinct, prompt_of, prompt_text

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
    Words repeat far more than texts do, so each is hashed once (in numpy, as the vectorizer would). The
    word table is a CSR matrix whose buffers grow by doubling, so adding a word costs its own
    n-grams rather than a copy of the whole table: the online path classifies one prompt at a time.
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

    def _append(self, lengths: np.ndarray, cols: np.ndarray, data: np.ndarray) -> None:
        """Add words whose n-gram columns (`lengths[i]` entries each, in word order) are `cols`."""
        n, nnz = self._rows, int(self._indptr[self._rows])
        if n + len(lengths) + 1 > len(self._indptr):
            self._indptr = np.resize(self._indptr, max(2 * len(self._indptr), n + len(lengths) + 1))
        if nnz + len(cols) > len(self._indices):
            size = max(2 * len(self._indices), nnz + len(cols))
            self._indices, self._data = np.resize(self._indices, size), np.resize(self._data, size)
        self._indptr[n + 1 : n + len(lengths) + 1] = np.cumsum(lengths) + nnz
        self._indices[nnz : nnz + len(cols)] = cols
        self._data[nnz : nnz + len(cols)] = data
        self._rows += len(lengths)

    def _word_ids(self, words: list[str]) -> np.ndarray:
        distinct = dict.fromkeys(words)
        new = [w for w in distinct if w not in self.index]
        if len(self.index) + len(new) > self.limit:
            self._clear()
            new = list(distinct)
        if new:
            # The table grows before the index, so an index entry always has its row.
            lengths, cols = (_few_word_counts if len(new) <= _FEW_WORDS else _word_counts)(new)
            self._append(lengths, cols, np.ones(len(cols)))
            self.index.update(zip(new, range(len(self.index), len(self.index) + len(new)), strict=True))
        return np.fromiter(map(self.index.__getitem__, words), dtype=np.int64, count=len(words))

    def ngram_counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One text's hashed n-gram columns (sorted) and their counts; lower-cased and clipped."""
        ids = self._word_ids(text.split())  # the vectorizer's split: whitespace runs
        starts = self._indptr[ids]
        lengths = self._indptr[ids + 1] - starts
        pos = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        cols, inverse = np.unique(self._indices[pos], return_inverse=True)
        return cols, np.bincount(inverse, weights=self._data[pos], minlength=len(cols))

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


# Up to this many texts, `predict_proba` scores text by text (no sparse product, whose per-call
# set-up scales with 2**18 columns); up to this many new words, their n-grams are hashed one by one.
_FEW = 8
_FEW_WORDS = 16
_WORDS = _WordFeatures()
_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return np.asarray((x << np.uint32(r)) | (x >> np.uint32(32 - r)))


def _mix(k: np.ndarray) -> np.ndarray:
    return np.asarray(_rotl(k * _C1, 15) * _C2)


def _murmur3(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """MurmurHash3_x86_32 (seed 0, signed, as sklearn's hasher) of the keys `buf[start:start+length]`,
    all at once; keys are at most 16 bytes (four characters of UTF-8), and `buf` is zero-padded past
    its end by as many."""
    h = np.zeros(len(start), dtype=np.uint32)
    blocks = length // 4
    b32 = buf.astype(np.uint32)
    # The little-endian 4-byte word at every byte offset, so that each block is one gather.
    quad = b32[:-3] | (b32[1:-2] << np.uint32(8)) | (b32[2:-1] << np.uint32(16)) | (b32[3:] << np.uint32(24))
    with np.errstate(over="ignore"):
        for b in range(4):
            rows = np.flatnonzero(blocks > b)
            if not len(rows):
                break
            x = h[rows] ^ _mix(quad[start[rows] + 4 * b])
            h[rows] = _rotl(x, 13) * np.uint32(5) + np.uint32(0xE6546B64)
        rest = length & 3
        tail = np.flatnonzero(rest)
        keep = (np.uint32(1) << (8 * rest[tail]).astype(np.uint32)) - np.uint32(1)
        h[tail] ^= _mix(quad[start[tail] + 4 * blocks[tail]] & keep)
        h ^= length.astype(np.uint32)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return h.view(np.int32)


def _few_word_counts(words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`_word_counts` for a handful of words of any script, n-gram by n-gram: what a prompt at
    the gateway adds, where numpy's per-call set-up would cost more than the hashing. The hasher's
    MurmurHash3 (x86, 32-bit, seed 0) of each n-gram's UTF-8 bytes, as sklearn's."""
    n_features = int(VECTORIZER["n_features"])
    low, high = VECTORIZER["ngram_range"]
    lengths: list[int] = []
    cols: list[int] = []
    for word in words:
        padded = f" {word} "
        before = len(cols)
        for n in range(low, high + 1):
            if len(padded) < n:
                break  # as the vectorizer: a padded word of n - 1 characters was its last n-gram
            for start in range(max(len(padded) - n + 1, 1)):
                gram = padded[start : start + n].encode("utf-8", "surrogatepass")
                cols.append(abs(mmh3.hash(gram, 0)) % n_features)
        lengths.append(len(cols) - before)
    return np.array(lengths, dtype=np.int64), np.array(cols, dtype=np.int32)


def _word_counts(words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The hasher's n-gram columns for many words of any script, in numpy: char_wb pads a word with
    spaces and takes every n-gram of n = 2..4 characters that fits (a padded word shorter than n
    yields nothing more), and hashes its UTF-8 bytes. Returns entries per word and the columns in
    word order (a column repeats as often as its n-gram occurs)."""
    if not words:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    text = "".join(f" {w} " for w in words)
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    # UTF-8 width of each character (a lone surrogate takes 3 bytes under surrogatepass).
    width = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    offset = np.concatenate(([0], np.cumsum(width)))
    buf = np.frombuffer(text.encode("utf-8", "surrogatepass") + bytes(16), dtype=np.uint8)
    padded = np.array([len(w) + 2 for w in words], dtype=np.int64)
    starts = np.cumsum(padded) - padded
    rows, begin, end = [], [], []
    low, high = VECTORIZER["ngram_range"]
    for n in range(low, high + 1):
        counts = np.maximum(padded - n + 1, 0)
        pos = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        rows.append(np.repeat(np.arange(len(words)), counts))
        begin.append(offset[pos])
        end.append(offset[pos + n])
    first, last = np.concatenate(begin), np.concatenate(end)
    cols = np.abs(_murmur3(buf, first, last - first).astype(np.int64)) % int(VECTORIZER["n_features"])
    row_ids = np.concatenate(rows)
    order = np.argsort(row_ids, kind="stable")
    return np.bincount(row_ids, minlength=len(words)), cols[order].astype(np.int32)


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
        if len(texts) <= _FEW:
            # One prompt at the gateway: its normalised counts times the rows of its columns.
            logits = np.empty((len(texts), len(self.classes)))
            for i, text in enumerate(texts):
                cols, counts = _WORDS.ngram_counts(clip(text).lower())
                norm = np.sqrt(counts @ counts)
                logits[i] = (counts / norm) @ self._weights[cols] if norm else 0.0
        else:
            logits = featurize(texts, canonical=False) @ self._weights
        logits = (logits + self.intercept) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

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
    if rows:
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
        return dict(_CAPABILITIES([prompt_of(event, with_system=True)])[0])
