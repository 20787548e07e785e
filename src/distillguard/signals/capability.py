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
from sklearn.feature_extraction.text import HashingVectorizer

from distillguard.signals.base import DistinctCache, per_distinct, prompt_of, prompt_text
from distillguard.signals.word_table import WordTable

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


# Up to this many texts, `classify` scores text by text (`CapabilityModel.best_one`).
_FEW = 8
_WORDS = WordTable(VECTORIZER["ngram_range"], VECTORIZER["n_features"])


@dataclass(frozen=True)
class CapabilityModel:
    """Linear model over hashed n-grams; `predict_proba` returns (n, classes) calibrated probabilities."""

    classes: tuple[str, ...]
    coef: np.ndarray  # (classes, n_features)
    intercept: np.ndarray
    temperature: float

    @cached_property
    def _weights(self) -> np.ndarray:
        # (n_features, classes), contiguous and float64: a word's product is the sum of the rows of
        # its n-grams, read one row at a time.
        return np.ascontiguousarray(self.coef.T, dtype=np.float64)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        totals, norms = _WORDS.projections([clip(t).lower() for t in texts], self._weights)
        # A text without n-grams has a zero row, as the vectorizer gives it.
        rows = np.divide(totals, norms[:, None], out=np.zeros_like(totals), where=norms[:, None] > 0)
        logits = (rows + self.intercept) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def best_one(self, text: str) -> tuple[str, float]:
        """The most likely class of one text and its probability, as `predict_proba([text])` gives
        them, with the softmax in Python floats: numpy's set-up per call cost more than the
        arithmetic on a row of seven. The gateway classifies one prompt at a time."""
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
