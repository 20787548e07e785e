"""LiteLLM `StandardLoggingPayload` JSON lines, as its logging callbacks and bucket loggers write them.

Field names follow `litellm/types/utils.py` (StandardLoggingPayload, StandardLoggingMetadata,
StandardLoggingHiddenParams). The account is the key's user, else its team, else its org, else
the key hash itself: the most specific billing principal LiteLLM records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.io.base import (
    Line,
    ReadOptions,
    RecordError,
    RejectSink,
    as_bool,
    as_float,
    as_int,
    as_str,
    as_time,
    as_time_us,
    dig,
    event_batches_from_tuples,
    is_mapping,
    iter_json_lines,
    iter_lines,
    resolve_client_ip,
)
from distillguard.io.messages import message_texts, response_text
from distillguard.schema import EVENT_COLUMNS

# LiteLLM writes this in place of content when message logging is turned off.
REDACTED = "redacted-by-litellm"


class LiteLLMReader:
    name = "litellm"

    def sniff(self, path: Path, first: Mapping[str, Any] | None) -> bool:
        if not first:
            return False
        keys = first.keys()
        return "standard_logging_object" in keys or {"id", "call_type", "startTime", "metadata"} <= keys

    def read(self, path: Path, rejects: RejectSink, options: ReadOptions) -> Iterator[pa.RecordBatch]:
        yield from self.read_lines(path, iter_lines(path, rejects), rejects, options)

    def read_lines(
        self, path: Path, lines: Iterable[tuple[int, Line]], rejects: RejectSink, options: ReadOptions
    ) -> Iterator[pa.RecordBatch]:
        def convert(obj: dict[str, Any]) -> tuple[Any, ...]:
            return _event_values(obj.get("standard_logging_object", obj), options, as_time_us)

        yield from event_batches_from_tuples(
            path, iter_json_lines(path, rejects, lines), convert, rejects, options.batch_rows
        )


def _lower_keys(headers: Any) -> dict[str, Any]:
    if not headers:
        return {}
    return {str(k).lower(): v for k, v in headers.items()} if is_mapping(headers) else {}


def _header(lowered: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        if isinstance(lowered.get(name), str):
            return str(lowered[name])
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if is_mapping(value) else {}


# The account: the key's user, else its team, else its org, else the key hash (with reject field names).
_ACCOUNT_KEYS = tuple(
    (key, f"metadata.{key}")
    for key in ("user_api_key_user_id", "user_api_key_team_id", "user_api_key_org_id", "user_api_key_hash")
)


def payload_to_event(p: Mapping[str, Any], options: ReadOptions) -> dict[str, Any]:
    """Map one StandardLoggingPayload to a canonical event row."""
    return dict(zip(EVENT_COLUMNS, _event_values(p, options, as_time), strict=True))


def payload_to_tuple(p: Mapping[str, Any], options: ReadOptions) -> tuple[Any, ...]:
    """One StandardLoggingPayload as a row tuple in EVENT_SCHEMA order (times in epoch us)."""
    return _event_values(p, options, as_time_us)


def _event_values(
    p: Mapping[str, Any], options: ReadOptions, time: Callable[[Any, str], Any]
) -> tuple[Any, ...]:
    """The event's values in EVENT_COLUMNS order; `time` converts timestamps (datetime or epoch us)."""
    if not is_mapping(p):
        raise RecordError("standard_logging_object", "expected an object")
    md = p.get("metadata") or {}
    if not is_mapping(md):
        raise RecordError("metadata", "expected an object")
    account = None
    for key, fld in _ACCOUNT_KEYS:
        account = as_str(md.get(key), fld)
        if account:
            break
    headers = _lower_keys(md.get("requester_custom_headers"))  # once per row: read three times below
    params = p.get("model_parameters") or {}
    if not is_mapping(params):
        raise RecordError("model_parameters", "expected an object")
    usage = _mapping(md.get("usage_object"))
    err = _mapping(p.get("error_information"))
    hidden = _mapping(p.get("hidden_params"))

    messages = p.get("messages")
    system, user = message_texts(messages, "messages")
    if user == REDACTED:
        system, user = None, None
    resp = response_text(p.get("response"), "response")  # read even when not kept: a bad one rejects
    if resp == REDACTED or not options.keep_responses:
        resp = None  # not kept: most of a line's bytes, not worth an Arrow copy that ingest then drops
    tools = params.get("tools")
    peer = as_str(p.get("requester_ip_address") or md.get("requester_ip_address"), "requester_ip_address")
    max_tokens = params.get("max_completion_tokens", params.get("max_tokens"))
    return (
        as_str(p.get("id"), "id"),  # request_id
        "litellm",  # source_format
        time(p.get("startTime"), "startTime"),  # start_time
        time(p.get("endTime"), "endTime"),  # end_time
        time(p.get("completionStartTime"), "completionStartTime"),  # first_token_time
        account,  # account_id
        as_str(md.get("user_api_key_hash"), "metadata.user_api_key_hash"),  # api_key_hash
        as_str(md.get("user_api_key_org_id"), "metadata.user_api_key_org_id"),  # org_id
        as_str(md.get("user_api_key_team_id"), "metadata.user_api_key_team_id"),  # team_id
        as_str(p.get("end_user") or md.get("user_api_key_end_user_id"), "end_user"),  # end_user_id
        resolve_client_ip(_header(headers, "x-forwarded-for"), peer, options.trusted_proxies),  # client_ip
        as_str(md.get("user_agent") or _header(headers, "user-agent"), "metadata.user_agent"),  # user_agent
        _header(headers, "http-referer", "referer", "x-http-referer"),  # referer
        _header(headers, "x-title"),  # app_title
        as_str(p.get("model_group") or p.get("model"), "model_group"),  # model_requested
        as_str(  # model_served
            hidden.get("litellm_model_name") or p.get("model"), "hidden_params.litellm_model_name"
        ),
        as_str(p.get("call_type"), "call_type"),  # call_type
        as_bool(params.get("stream", p.get("stream")), "model_parameters.stream"),  # stream
        as_str(p.get("status") or "success", "status"),  # status
        as_str(err.get("error_code"), "error_information.error_code"),  # error_code
        as_str(err.get("error_class"), "error_information.error_class"),  # error_class
        as_int(p.get("prompt_tokens"), "prompt_tokens"),  # prompt_tokens
        as_int(p.get("completion_tokens"), "completion_tokens"),  # completion_tokens
        as_int(  # reasoning_tokens
            dig(usage, "completion_tokens_details.reasoning_tokens") if usage else None,
            "metadata.usage_object.completion_tokens_details.reasoning_tokens",
        ),
        as_int(  # cached_tokens
            dig(usage, "prompt_tokens_details.cached_tokens") if usage else None,
            "metadata.usage_object.prompt_tokens_details.cached_tokens",
        ),
        as_float(params.get("temperature"), "model_parameters.temperature"),  # temperature
        as_int(max_tokens, "model_parameters.max_tokens"),  # max_tokens
        as_int(params.get("n"), "model_parameters.n"),  # n
        as_bool(params.get("logprobs"), "model_parameters.logprobs"),  # logprobs
        as_int(params.get("top_logprobs"), "model_parameters.top_logprobs"),  # top_logprobs
        len(tools) if isinstance(tools, list) else None,  # tools_count
        system,  # system_prompt
        user,  # user_text
        resp,  # response_text
        user is not None,  # content_present
    )
