"""LiteLLM `LiteLLM_SpendLogs` rows exported as CSV (e.g. psql `\\copy ... CSV HEADER`) or JSON lines.

Column names follow the `LiteLLM_SpendLogs` model in BerriAI/litellm `schema.prisma` and the
`SpendLogsPayload` / `SpendLogsMetadata` types in `litellm/proxy/_types.py`. JSON columns
(`metadata`, `proxy_server_request`) arrive as text in CSV and as text or objects in JSON lines.
SpendLogs keep metadata only by default, so events carry no text (`content_present` false); the
request parameters come from `proxy_server_request` when the proxy stored it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.io.base import (
    ReadOptions,
    RejectSink,
    as_bool,
    as_float,
    as_int,
    as_object,
    as_str,
    as_time,
    batches_from_records,
    dig,
    first_line,
    iter_csv_records,
    iter_json_lines,
    resolve_client_ip,
)

# Enough to tell a SpendLogs row from a StandardLoggingPayload (which has `id`, not `request_id`).
_SIGNATURE = frozenset({"request_id", "call_type", "startTime"})


class SpendLogsReader:
    name = "spendlogs"

    def sniff(self, path: Path, first: Mapping[str, Any] | None) -> bool:
        if first is not None:
            return first.keys() >= _SIGNATURE
        header = first_line(path)
        return header is not None and {h.strip().strip('"') for h in header.split(",")} >= _SIGNATURE

    def read(self, path: Path, rejects: RejectSink, options: ReadOptions) -> Iterator[pa.RecordBatch]:
        head = first_line(path) or ""
        json_lines = head.startswith("{")
        records = iter_json_lines(path, rejects) if json_lines else iter_csv_records(path, rejects)
        yield from batches_from_records(
            path, records, lambda row: row_to_event(row, options), rejects, options.batch_rows
        )


def row_to_event(row: Mapping[str, Any], options: ReadOptions) -> dict[str, Any]:
    """Map one SpendLogs row to a canonical event row."""
    md = as_object(row.get("metadata"), "metadata")
    body = as_object(row.get("proxy_server_request"), "proxy_server_request")
    err = as_object(md.get("error_information"), "metadata.error_information")
    usage = as_object(md.get("usage_object") or md.get("additional_usage_values"), "metadata.usage_object")
    user = as_str(row.get("user"), "user") or as_str(
        md.get("user_api_key_user_id"), "metadata.user_api_key_user_id"
    )
    team = as_str(row.get("team_id"), "team_id") or as_str(md.get("user_api_key_team_id"), "metadata.team_id")
    org = as_str(row.get("organization_id") or md.get("user_api_key_org_id"), "organization_id")
    key_hash = as_str(row.get("api_key"), "api_key")
    peer = as_str(row.get("requester_ip_address") or md.get("requester_ip_address"), "requester_ip_address")
    tools = body.get("tools") or body.get("functions")
    return {
        "request_id": as_str(row.get("request_id"), "request_id"),
        "source_format": "spendlogs",
        "start_time": as_time(row.get("startTime"), "startTime"),
        "end_time": as_time(row.get("endTime"), "endTime"),
        "first_token_time": as_time(row.get("completionStartTime"), "completionStartTime"),
        # The same precedence as the LiteLLM reader: the most specific billing principal.
        "account_id": user or team or org or key_hash,
        "api_key_hash": key_hash,
        "org_id": org,
        "team_id": team,
        "end_user_id": as_str(row.get("end_user"), "end_user"),
        "client_ip": resolve_client_ip(None, peer, options.trusted_proxies),
        "model_requested": as_str(
            row.get("model_group") or body.get("model") or row.get("model"), "model_group"
        ),
        "model_served": as_str(row.get("model"), "model"),
        "call_type": as_str(row.get("call_type"), "call_type"),
        "stream": as_bool(body.get("stream"), "proxy_server_request.stream"),
        "status": as_str(row.get("status") or md.get("status") or "success", "status"),
        "error_code": as_str(err.get("error_code"), "metadata.error_information.error_code"),
        "error_class": as_str(err.get("error_class"), "metadata.error_information.error_class"),
        "prompt_tokens": as_int(row.get("prompt_tokens"), "prompt_tokens"),
        "completion_tokens": as_int(row.get("completion_tokens"), "completion_tokens"),
        "reasoning_tokens": as_int(
            dig(usage, "completion_tokens_details.reasoning_tokens"),
            "metadata.usage_object.completion_tokens_details.reasoning_tokens",
        ),
        "cached_tokens": as_int(
            dig(usage, "prompt_tokens_details.cached_tokens"),
            "metadata.usage_object.prompt_tokens_details.cached_tokens",
        ),
        "temperature": as_float(body.get("temperature"), "proxy_server_request.temperature"),
        "max_tokens": as_int(
            body.get("max_completion_tokens", body.get("max_tokens")), "proxy_server_request.max_tokens"
        ),
        "n": as_int(body.get("n"), "proxy_server_request.n"),
        "logprobs": as_bool(body.get("logprobs"), "proxy_server_request.logprobs"),
        "top_logprobs": as_int(body.get("top_logprobs"), "proxy_server_request.top_logprobs"),
        "tools_count": len(tools) if isinstance(tools, list) else None,
        "content_present": False,
    }
