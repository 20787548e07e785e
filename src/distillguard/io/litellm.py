"""LiteLLM `StandardLoggingPayload` JSON lines, as its logging callbacks and bucket loggers write them.

Field names follow `litellm/types/utils.py` (StandardLoggingPayload, StandardLoggingMetadata,
StandardLoggingHiddenParams). The account is the key's user, else its team, else its org, else
the key hash itself: the most specific billing principal LiteLLM records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.io.base import (
    ReadOptions,
    RecordError,
    RejectSink,
    as_bool,
    as_float,
    as_int,
    as_str,
    as_time,
    batches_from_records,
    dig,
    iter_json_lines,
    resolve_client_ip,
)
from distillguard.io.messages import message_texts, response_text

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
        def convert(obj: dict[str, Any]) -> dict[str, Any]:
            return payload_to_event(obj.get("standard_logging_object", obj), options)

        yield from batches_from_records(
            path, iter_json_lines(path, rejects), convert, rejects, options.batch_rows
        )


def _lower_keys(headers: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in headers.items()} if isinstance(headers, Mapping) else {}


def _header(lowered: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        if isinstance(lowered.get(name), str):
            return str(lowered[name])
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def payload_to_event(p: Mapping[str, Any], options: ReadOptions) -> dict[str, Any]:
    """Map one StandardLoggingPayload to a canonical event row."""
    if not isinstance(p, Mapping):
        raise RecordError("standard_logging_object", "expected an object")
    md = p.get("metadata") or {}
    if not isinstance(md, Mapping):
        raise RecordError("metadata", "expected an object")
    account = None
    for key in ("user_api_key_user_id", "user_api_key_team_id", "user_api_key_org_id", "user_api_key_hash"):
        account = as_str(md.get(key), f"metadata.{key}")
        if account:
            break
    headers = _lower_keys(md.get("requester_custom_headers"))  # once per row: read three times below
    params = p.get("model_parameters") or {}
    if not isinstance(params, Mapping):
        raise RecordError("model_parameters", "expected an object")
    usage = _mapping(md.get("usage_object"))
    err = _mapping(p.get("error_information"))
    hidden = _mapping(p.get("hidden_params"))

    messages = p.get("messages")
    system, user = message_texts(messages, "messages")
    if user == REDACTED:
        system, user = None, None
    resp = response_text(p.get("response"), "response")
    if resp == REDACTED:
        resp = None
    tools = params.get("tools")
    peer = as_str(p.get("requester_ip_address") or md.get("requester_ip_address"), "requester_ip_address")
    max_tokens = params.get("max_completion_tokens", params.get("max_tokens"))
    return {
        "request_id": as_str(p.get("id"), "id"),
        "source_format": "litellm",
        "start_time": as_time(p.get("startTime"), "startTime"),
        "end_time": as_time(p.get("endTime"), "endTime"),
        "first_token_time": as_time(p.get("completionStartTime"), "completionStartTime"),
        "account_id": account,
        "api_key_hash": as_str(md.get("user_api_key_hash"), "metadata.user_api_key_hash"),
        "org_id": as_str(md.get("user_api_key_org_id"), "metadata.user_api_key_org_id"),
        "team_id": as_str(md.get("user_api_key_team_id"), "metadata.user_api_key_team_id"),
        "end_user_id": as_str(p.get("end_user") or md.get("user_api_key_end_user_id"), "end_user"),
        "client_ip": resolve_client_ip(_header(headers, "x-forwarded-for"), peer, options.trusted_proxies),
        "user_agent": as_str(md.get("user_agent") or _header(headers, "user-agent"), "metadata.user_agent"),
        "referer": _header(headers, "http-referer", "referer", "x-http-referer"),
        "app_title": _header(headers, "x-title"),
        "model_requested": as_str(p.get("model_group") or p.get("model"), "model_group"),
        "model_served": as_str(
            hidden.get("litellm_model_name") or p.get("model"), "hidden_params.litellm_model_name"
        ),
        "call_type": as_str(p.get("call_type"), "call_type"),
        "stream": as_bool(params.get("stream", p.get("stream")), "model_parameters.stream"),
        "status": as_str(p.get("status") or "success", "status"),
        "error_code": as_str(err.get("error_code"), "error_information.error_code"),
        "error_class": as_str(err.get("error_class"), "error_information.error_class"),
        "prompt_tokens": as_int(p.get("prompt_tokens"), "prompt_tokens"),
        "completion_tokens": as_int(p.get("completion_tokens"), "completion_tokens"),
        "reasoning_tokens": as_int(
            dig(usage, "completion_tokens_details.reasoning_tokens"),
            "metadata.usage_object.completion_tokens_details.reasoning_tokens",
        ),
        "cached_tokens": as_int(
            dig(usage, "prompt_tokens_details.cached_tokens"),
            "metadata.usage_object.prompt_tokens_details.cached_tokens",
        ),
        "temperature": as_float(params.get("temperature"), "model_parameters.temperature"),
        "max_tokens": as_int(max_tokens, "model_parameters.max_tokens"),
        "n": as_int(params.get("n"), "model_parameters.n"),
        "logprobs": as_bool(params.get("logprobs"), "model_parameters.logprobs"),
        "top_logprobs": as_int(params.get("top_logprobs"), "model_parameters.top_logprobs"),
        "tools_count": len(tools) if isinstance(tools, list) else None,
        "system_prompt": system,
        "user_text": user,
        "response_text": resp,
        "content_present": user is not None,
    }
