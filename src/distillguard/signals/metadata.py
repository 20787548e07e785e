"""Per-request signals that need no prompt text, so metadata-only logs still carry them.

Most request metadata (n, logprobs, stream, temperature) is already a raw event column; this adds
only what needs deriving: whether the request hit a rate limit (harvesters ride just under it) and
how much output was bought per input token (distillers want long answers to short prompts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_RATE_LIMIT_CLASSES = ("RateLimitError", "rate_limit_exceeded", "RateLimitExceeded")


class MetadataSignal:
    """Signal: is_rate_limited (error 429 or a rate-limit error class) and output_ratio."""

    name = "metadata"
    columns = pa.schema([("is_rate_limited", pa.bool_()), ("output_ratio", pa.float64())])

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        code = pc.equal(batch.column("error_code"), "429")
        klass = pc.is_in(batch.column("error_class"), value_set=pa.array(_RATE_LIMIT_CLASSES))
        limited = pc.fill_null(pc.or_kleene(code, klass), False)
        prompt = batch.column("prompt_tokens")
        ratio = pc.divide(
            pc.cast(batch.column("completion_tokens"), pa.float64()),
            pc.if_else(pc.greater(prompt, 0), pc.cast(prompt, pa.float64()), None),
        )
        return pa.RecordBatch.from_arrays([limited, ratio], schema=self.columns)

    def row(self, event: Mapping[str, Any]) -> dict[str, Any]:
        prompt, completion = event.get("prompt_tokens"), event.get("completion_tokens")
        limited = event.get("error_code") == "429" or event.get("error_class") in _RATE_LIMIT_CLASSES
        ratio = completion / prompt if completion is not None and prompt is not None and prompt > 0 else None
        return {"is_rate_limited": limited, "output_ratio": ratio}
