"""The canonical columns: the one place where events and accounts are defined.

Every reader produces `EVENT_SCHEMA` batches and every later stage reads them, so a column is
added here first. Text columns may be null: many providers log metadata only, and every stage
downstream must work when `content_present` is false.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

# (name, type, required, description). Required columns must be non-null in every event.
_EVENT_COLUMNS: list[tuple[str, pa.DataType, bool, str]] = [
    ("request_id", pa.string(), True, "Unique id of the exchange; ingest is idempotent on it."),
    ("source_format", pa.string(), True, "Reader that produced the row (litellm, spendlogs, ...)."),
    ("start_time", TS, True, "When the request arrived."),
    ("end_time", TS, False, "When the response finished."),
    ("first_token_time", TS, False, "First streamed token, if streaming."),
    ("account_id", pa.string(), True, "The billing account the request is charged to."),
    ("api_key_hash", pa.string(), False, "Hash of the API key used (never the key)."),
    ("org_id", pa.string(), False, "Organisation id."),
    ("team_id", pa.string(), False, "Team id."),
    ("end_user_id", pa.string(), False, "End user declared by the caller (routers, enterprise apps)."),
    ("client_ip", pa.string(), False, "Client IP after X-Forwarded-For resolution over trusted proxies."),
    ("user_agent", pa.string(), False, "HTTP User-Agent."),
    ("referer", pa.string(), False, "HTTP-Referer header (OpenRouter-style app attribution)."),
    ("app_title", pa.string(), False, "X-Title header (OpenRouter-style app attribution)."),
    ("model_requested", pa.string(), False, "Model name the caller asked for."),
    ("model_served", pa.string(), False, "Model/deployment that answered."),
    ("call_type", pa.string(), False, "completion, acompletion, embedding, batch, ..."),
    ("stream", pa.bool_(), False, "Streaming response requested."),
    ("status", pa.string(), True, "success or failure."),
    ("error_code", pa.string(), False, "Provider error code, e.g. 429."),
    ("error_class", pa.string(), False, "Error class, e.g. RateLimitError."),
    ("prompt_tokens", pa.int64(), False, "Input tokens."),
    ("completion_tokens", pa.int64(), False, "Output tokens."),
    ("reasoning_tokens", pa.int64(), False, "Reasoning tokens inside completion_tokens."),
    ("cached_tokens", pa.int64(), False, "Prompt tokens served from cache."),
    ("temperature", pa.float64(), False, "Sampling temperature."),
    ("max_tokens", pa.int64(), False, "max_tokens / max_completion_tokens."),
    ("n", pa.int64(), False, "Number of choices requested."),
    ("logprobs", pa.bool_(), False, "Log-probabilities requested."),
    ("top_logprobs", pa.int64(), False, "Number of top log-probabilities requested."),
    ("tools_count", pa.int64(), False, "Number of tools/functions offered to the model."),
    ("system_prompt", pa.string(), False, "System messages, joined."),
    ("user_text", pa.string(), False, "User messages, joined (the prompt)."),
    ("response_text", pa.string(), False, "Assistant response text."),
    ("content_present", pa.bool_(), True, "Whether prompt text was logged at all."),
]

EVENT_SCHEMA = pa.schema(
    [pa.field(name, typ, nullable=not required) for name, typ, required, _ in _EVENT_COLUMNS]
)
EVENT_COLUMNS: tuple[str, ...] = tuple(name for name, *_ in _EVENT_COLUMNS)
REQUIRED_EVENT_COLUMNS: frozenset[str] = frozenset(n for n, _, req, _ in _EVENT_COLUMNS if req)
EVENT_DOCS: dict[str, str] = {name: doc for name, _, _, doc in _EVENT_COLUMNS}

_ACCOUNT_COLUMNS: list[tuple[str, pa.DataType, bool, str]] = [
    ("account_id", pa.string(), True, "Billing account id, as in events."),
    ("created_at", TS, False, "Account creation time."),
    ("email_domain", pa.string(), False, "Domain of the sign-up e-mail."),
    ("payment_fingerprint", pa.string(), False, "Hash of the payment instrument."),
    ("country", pa.string(), False, "Billing country, ISO 3166-1 alpha-2."),
    ("account_type", pa.string(), False, "free, paid, enterprise, reseller, partner, ..."),
    ("verified", pa.bool_(), False, "Identity verification passed."),
]
ACCOUNT_SCHEMA = pa.schema(
    [pa.field(name, typ, nullable=not required) for name, typ, required, _ in _ACCOUNT_COLUMNS]
)
ACCOUNT_COLUMNS: tuple[str, ...] = tuple(name for name, *_ in _ACCOUNT_COLUMNS)
ACCOUNT_DOCS: dict[str, str] = {name: doc for name, _, _, doc in _ACCOUNT_COLUMNS}

# Per-request columns derived from events by enrich/ and signals/ (row-wise, engine independent).
_REQUEST_SIGNAL_COLUMNS: list[tuple[str, pa.DataType, bool, str]] = [
    ("request_id", pa.string(), True, "Joins back to events."),
    ("ip_prefix", pa.string(), False, "Client IP network: IPv4 /24 or IPv6 /48."),
    ("asn", pa.int64(), False, "Autonomous system of the client IP."),
    ("asn_org", pa.string(), False, "Name of that autonomous system."),
    ("ip_kind", pa.string(), False, "hosting, vpn, tor, proxy, residential or unknown."),
    ("ua_family", pa.string(), False, "Client family from the user agent (openai-python, curl, browser...)."),
    ("language", pa.string(), False, "ISO 639-1 language of the prompt; null without text."),
    ("capability", pa.string(), False, "Predicted capability being extracted (see CAPABILITIES)."),
    ("capability_score", pa.float64(), False, "Calibrated probability of `capability`."),
    (
        "template_id",
        pa.string(),
        False,
        "Seeded fingerprint of the slot-masked prompt; shared across accounts.",
    ),
    ("prompt_chars", pa.int64(), False, "Length of the prompt text."),
    (
        "is_rate_limited",
        pa.bool_(),
        False,
        "Request refused for rate limiting (error 429 or its error class).",
    ),
    ("output_ratio", pa.float64(), False, "completion_tokens / prompt_tokens; null without prompt tokens."),
]
REQUEST_SIGNAL_SCHEMA = pa.schema(
    [pa.field(name, typ, nullable=not req) for name, typ, req, _ in _REQUEST_SIGNAL_COLUMNS]
)
REQUEST_SIGNAL_DOCS: dict[str, str] = {name: doc for name, _, _, doc in _REQUEST_SIGNAL_COLUMNS}

VERDICTS: tuple[str, ...] = ("allow", "review", "throttle", "verify", "block")
CAPABILITIES: tuple[str, ...] = (
    "cot_elicitation",
    "rubric_grading",
    "censorship_rewrite",
    "agentic_coding",
    "benchmark_item",
    "general",
)


def rows_to_batch(rows: Iterable[Mapping[str, Any]], schema: pa.Schema = EVENT_SCHEMA) -> pa.RecordBatch:
    """Build a batch from row dicts already validated against `schema` (missing keys become null)."""
    return pa.RecordBatch.from_pylist(list(rows), schema=schema)


def schema_markdown() -> str:
    """Render docs/schema.md from the definitions above, so the doc cannot drift from the code."""
    out = ["# Canonical schema", "", "Generated by `distillguard schema`; defined in `schema.py`.", ""]
    sections = (
        ("Events", _EVENT_COLUMNS),
        ("Accounts", _ACCOUNT_COLUMNS),
        ("Request signals", _REQUEST_SIGNAL_COLUMNS),
    )
    for title, cols in sections:
        out += [f"## {title}", "", "| column | type | required | meaning |", "|---|---|---|---|"]
        out += [f"| `{n}` | {t} | {'yes' if r else ''} | {d} |" for n, t, r, d in cols]
        out.append("")
    return "\n".join(out)
