"""Per-request signals: enrichment and text signals behind one protocol, applied to event batches."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from distillguard.schema import REQUEST_SIGNAL_SCHEMA
from distillguard.signals.base import Signal, apply_signals, prompt_of, prompt_text


class PromptLengthSignal:
    """Signal: prompt_chars, the length of the user prompt (null without text)."""

    name = "prompt_length"
    columns = pa.schema([("prompt_chars", pa.int64())])

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        length = pc.cast(pc.utf8_length(prompt_text(batch)), pa.int64())
        return pa.RecordBatch.from_arrays([length], schema=self.columns)

    def row(self, event: Mapping[str, Any]) -> dict[str, Any]:
        text = prompt_of(event)
        return {"prompt_chars": None if text is None else len(text)}


def default_signals() -> list[Signal]:
    """Every per-request signal, in the order their columns appear in REQUEST_SIGNAL_SCHEMA."""
    # Imported here: enrich/ builds on signals.base, so importing it at package load would be circular.
    from distillguard.enrich.ip import IpEnricher
    from distillguard.enrich.user_agent import UserAgentEnricher
    from distillguard.signals.capability import CapabilitySignal
    from distillguard.signals.language import LanguageSignal
    from distillguard.signals.metadata import MetadataSignal
    from distillguard.signals.template import TemplateSignal

    return [
        IpEnricher(),
        UserAgentEnricher(),
        LanguageSignal(),
        CapabilitySignal(),
        TemplateSignal(),
        PromptLengthSignal(),
        MetadataSignal(),
    ]


# The event columns the signals read: what a store hands them, so that the responses and other wide
# columns no signal reads are neither read back nor sent to worker processes.
# (tests/signals/test_request_signals.py checks that every signal computes the same from these alone.)
SIGNAL_INPUTS: tuple[str, ...] = (
    "request_id",
    "client_ip",
    "user_agent",
    "content_present",
    "system_prompt",
    "user_text",
    "prompt_tokens",
    "completion_tokens",
    "error_code",
    "error_class",
)


# The columns the prompt signals read. Their values depend on the prompt alone, which repeats across
# requests (a fifth of `medium`'s are distinct), so a store computes them once per distinct prompt
# and joins them to its events (`pipeline.compute_request_signals`).
# (tests/signals/test_request_signals.py checks both halves against `request_signals`.)
PROMPT_INPUTS: tuple[str, ...] = ("content_present", "system_prompt", "user_text")
PROMPT_SIGNALS: frozenset[str] = frozenset({"language", "capability", "template", "prompt_length"})


@cache  # signals are stateless; their caches are per module
def _shared_signals() -> tuple[Signal, ...]:
    return tuple(default_signals())


def request_signals(batch: pa.RecordBatch) -> pa.RecordBatch:
    """REQUEST_SIGNAL_SCHEMA rows for an EVENT_SCHEMA batch."""
    return apply_signals(batch, _shared_signals(), REQUEST_SIGNAL_SCHEMA)


@cache
def prompt_signal_schema() -> pa.Schema:
    """The columns of the `PROMPT_SIGNALS`, as in REQUEST_SIGNAL_SCHEMA."""
    names = {n for s in _shared_signals() if s.name in PROMPT_SIGNALS for n in s.columns.names}
    return pa.schema([f for f in REQUEST_SIGNAL_SCHEMA if f.name in names])


def prompt_signals(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The `prompt_signal_schema` columns for a batch of `PROMPT_INPUTS` (prompts, no request ids)."""
    signals = [s for s in _shared_signals() if s.name in PROMPT_SIGNALS]
    return apply_signals(batch, signals, prompt_signal_schema(), carried=())


@cache
def prompt_table_schema() -> pa.Schema:
    """A prompt (as the prompt signals see it) and its prompt signals."""
    prompt = [pa.field("system_prompt", pa.string()), pa.field("user_text", pa.string())]
    return pa.schema([*prompt, *prompt_signal_schema()])


def with_prompt_signals(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch of prompts (`PROMPT_INPUTS`) with their prompt signals: `prompt_table_schema` rows.
    Run in the signal workers (`pipeline.compute_request_signals`)."""
    found = prompt_signals(batch)
    columns = [batch.column("system_prompt"), batch.column("user_text"), *found.columns]
    return pa.RecordBatch.from_arrays(columns, schema=prompt_table_schema())


def event_signals(batch: pa.RecordBatch) -> pa.RecordBatch:
    """REQUEST_SIGNAL_SCHEMA rows for a batch of the other signals' inputs that already holds its
    prompt signals' columns (`prompt_signals` of each row's prompt)."""
    signals = [s for s in _shared_signals() if s.name not in PROMPT_SIGNALS]
    carried = ("request_id", *prompt_signal_schema().names)
    return apply_signals(batch, signals, REQUEST_SIGNAL_SCHEMA, carried=carried)


# An event that exercises every signal's model and compiled loop: computing its signals loads the
# language model and compiles (or reads from numba's cache) the loops, which a first real request or
# batch would otherwise pay for.
WARM_UP_EVENT: Mapping[str, Any] = {
    "request_id": "warm-up",
    "start_time": 0.0,
    "account_id": "",
    "content_present": True,
    "user_text": "Warm-up: think step by step and explain your reasoning.",
    "client_ip": "192.0.2.1",
}


def warm_up_signals() -> None:
    """Load every signal's models and compile their loops now (a second or three on a fresh process)."""
    request_signal_row(WARM_UP_EVENT)


def request_signal_row(event: Mapping[str, Any]) -> dict[str, Any]:
    """One event's REQUEST_SIGNAL_SCHEMA row as a dict, equal to its row of `request_signals`."""
    out: dict[str, Any] = {"request_id": event.get("request_id")}
    for signal in _shared_signals():
        out.update(signal.row(event))
    return out


__all__ = [
    "PROMPT_INPUTS",
    "PROMPT_SIGNALS",
    "SIGNAL_INPUTS",
    "WARM_UP_EVENT",
    "Signal",
    "apply_signals",
    "default_signals",
    "event_signals",
    "prompt_signal_schema",
    "prompt_signals",
    "prompt_table_schema",
    "request_signal_row",
    "request_signals",
    "warm_up_signals",
    "with_prompt_signals",
]
