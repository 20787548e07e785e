"""OpenTelemetry GenAI spans exported as OTLP/JSON, one `ExportTraceServiceRequest` per line.

That is what the collector's file exporter writes: `{"resourceSpans": [{"resource": {...},
"scopeSpans": [{"scope": {...}, "spans": [...]}]}]}` with attributes as `[{key, value: {stringValue
| intValue | doubleValue | boolValue | arrayValue | kvlistValue}}]`, 64-bit integers and unix-nano
times as strings, ids as hex (OTLP spec, "JSON Protobuf Encoding"). Names follow the GenAI
semantic conventions (`gen_ai.*`, `client.address`, `user_agent.original`, `user.id`, `error.type`).

A span is an exchange when it has a `gen_ai.*` attribute; other spans (HTTP, database) are not
events. A bad span is one reject naming its line and field; the other spans of the line are kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from distillguard.io.base import (
    Line,
    ReadOptions,
    RecordError,
    RejectSink,
    as_float,
    as_int,
    as_str,
    as_time,
    batches_from_records,
    iter_json_lines,
    resolve_client_ip,
)
from distillguard.io.messages import content_text, message_texts, response_text

_SYSTEM_ROLES = frozenset({"system", "developer"})


class OTelReader:
    name = "otel"

    def sniff(self, path: Path, first: Mapping[str, Any] | None) -> bool:
        return first is not None and "resourceSpans" in first

    def read(self, path: Path, rejects: RejectSink, options: ReadOptions) -> Iterator[pa.RecordBatch]:
        def convert(item: Mapping[str, Any]) -> dict[str, Any]:
            try:
                return span_to_event(item["span"], item["resource"], options)
            except RecordError as exc:
                raise RecordError(f"{item['where']}.{exc.field}", exc.reason) from exc

        yield from batches_from_records(
            path, _genai_spans(path, rejects), convert, rejects, options.batch_rows
        )


def _genai_spans(path: Path, rejects: RejectSink) -> Iterator[tuple[int, Line, dict[str, Any]]]:
    """(line, raw line, {span, resource attributes, where}) for each GenAI span of each line."""
    for lineno, raw, doc in iter_json_lines(path, rejects):
        try:
            for where, resource, span in _walk(doc):
                if _is_genai(span):
                    yield lineno, raw, {"span": span, "resource": resource, "where": where}
        except RecordError as exc:
            rejects.add(path, lineno, exc.field, exc.reason, raw)


def _walk(doc: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], Mapping[str, Any]]]:
    if "resourceSpans" not in doc:
        raise RecordError("resourceSpans", "required field missing: not an ExportTraceServiceRequest")
    for i, rs in enumerate(_list(doc.get("resourceSpans"), "resourceSpans")):
        where = f"resourceSpans[{i}]"
        if not isinstance(rs, Mapping):
            raise RecordError(where, "expected an object")
        resource = rs.get("resource") or {}
        if not isinstance(resource, Mapping):
            raise RecordError(f"{where}.resource", "expected an object")
        try:
            resource_attrs = attributes(resource.get("attributes"))
        except RecordError as exc:
            raise RecordError(f"{where}.resource.{exc.field}", exc.reason) from exc
        for j, ss in enumerate(_list(rs.get("scopeSpans"), f"{where}.scopeSpans")):
            if not isinstance(ss, Mapping):
                raise RecordError(f"{where}.scopeSpans[{j}]", "expected an object")
            for k, span in enumerate(_list(ss.get("spans"), f"{where}.scopeSpans[{j}].spans")):
                span_where = f"{where}.scopeSpans[{j}].spans[{k}]"
                if not isinstance(span, Mapping):
                    raise RecordError(span_where, "expected an object")
                yield span_where, resource_attrs, span


def _list(value: Any, fld: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(fld, f"expected a list, got {type(value).__name__}")
    return value


def _is_genai(span: Mapping[str, Any]) -> bool:
    attrs = span.get("attributes")
    return isinstance(attrs, list) and any(
        isinstance(a, Mapping) and str(a.get("key", "")).startswith("gen_ai.") for a in attrs
    )


def any_value(value: Any, fld: str) -> Any:
    """A Python value from an OTLP `AnyValue` object."""
    if not isinstance(value, Mapping):
        raise RecordError(fld, "expected an AnyValue object")
    if not value:
        return None
    (kind, inner), *rest = value.items()
    if rest:
        raise RecordError(fld, f"AnyValue with several kinds: {sorted(value)}")
    if kind in ("stringValue", "bytesValue"):
        return as_str(inner, fld)
    if kind == "boolValue":
        if not isinstance(inner, bool):
            raise RecordError(fld, f"expected a boolean, got {inner!r:.40}")
        return inner
    if kind == "intValue":
        return as_int(inner, fld)
    if kind == "doubleValue":
        return as_float(inner, fld)
    if kind == "arrayValue":
        items = inner.get("values") if isinstance(inner, Mapping) else None
        return [any_value(v, f"{fld}[{i}]") for i, v in enumerate(_list(items, fld))]
    if kind == "kvlistValue":
        return attributes(inner.get("values") if isinstance(inner, Mapping) else None)
    raise RecordError(fld, f"unknown AnyValue kind {kind!r:.40}")


def attributes(items: Any) -> dict[str, Any]:
    """`[{key, value}]` as a dict."""
    out: dict[str, Any] = {}
    for i, item in enumerate(_list(items, "attributes")):
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise RecordError(f"attributes[{i}]", "expected {key, value}")
        key = item["key"]
        out[key] = any_value(item.get("value", {}), key)
    return out


def _texts(messages: Any, fld: str) -> tuple[str | None, str | None]:
    """(system, user) from GenAI messages: `parts` (current conventions) or OpenAI-style `content`."""
    if isinstance(messages, str):
        try:
            messages = orjson.loads(messages)
        except orjson.JSONDecodeError:
            return None, messages
    if isinstance(messages, list) and any(isinstance(m, Mapping) and "parts" in m for m in messages):
        system, user = [], []
        for m in messages:
            text = _parts_text(m.get("parts")) if isinstance(m, Mapping) else None
            if text and m.get("role") in _SYSTEM_ROLES:
                system.append(text)
            elif text and m.get("role") == "user":
                user.append(text)
        return "\n\n".join(system) or None, "\n\n".join(user) or None
    return message_texts(messages, fld)


def _parts_text(parts: Any) -> str | None:
    if isinstance(parts, str):
        return parts or None
    if not isinstance(parts, list):
        return None
    texts = [
        str(p["content"])
        for p in parts
        if isinstance(p, Mapping) and p.get("type") == "text" and p.get("content")
    ]
    return "\n".join(texts) or None


def _output_text(value: Any) -> str | None:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value or None
    if isinstance(value, list):
        texts = [
            _parts_text(m.get("parts")) or content_text(m.get("content"))
            for m in value
            if isinstance(m, Mapping)
        ]
        return "\n".join(t for t in texts if t) or None
    if isinstance(value, Mapping):
        return response_text(value, "gen_ai.output.messages") or content_text(value.get("content"))
    return None


def _event_content(span: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(system, user, response) from span events: `gen_ai.{system,user}.message`, `gen_ai.choice`,
    or the older `gen_ai.content.prompt` / `gen_ai.content.completion` events."""
    system: list[str] = []
    user: list[str] = []
    response: list[str] = []
    for i, event in enumerate(_list(span.get("events"), "events")):
        if not isinstance(event, Mapping):
            raise RecordError(f"events[{i}]", "expected an object")
        name = event.get("name")
        if not isinstance(name, str) or not name.startswith("gen_ai."):
            continue
        try:
            attrs = attributes(event.get("attributes"))
        except RecordError as exc:
            raise RecordError(f"events[{i}].{exc.field}", exc.reason) from exc
        if name in ("gen_ai.system.message", "gen_ai.user.message"):
            text = content_text(attrs.get("content"))
            if text:
                (system if name == "gen_ai.system.message" else user).append(text)
        elif name == "gen_ai.choice":
            message = attrs.get("message")
            text = _output_text(message if message is not None else attrs.get("content"))
            if text:
                response.append(text)
        elif name == "gen_ai.content.prompt":
            s, u = _texts(attrs.get("gen_ai.prompt"), f"events[{i}].gen_ai.prompt")
            system += [s] if s else []
            user += [u] if u else []
        elif name == "gen_ai.content.completion":
            text = _output_text(attrs.get("gen_ai.completion"))
            if text:
                response.append(text)
    return "\n\n".join(system) or None, "\n\n".join(user) or None, "\n\n".join(response) or None


def _header(attrs: Mapping[str, Any], name: str) -> str | None:
    # http.request.header.<name> is a string array in the HTTP conventions.
    value = attrs.get(f"http.request.header.{name}")
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return value if isinstance(value, str) and value else None


def span_to_event(
    span: Mapping[str, Any], resource: Mapping[str, Any], options: ReadOptions
) -> dict[str, Any]:
    """Map one GenAI span (with its resource attributes) to a canonical event row."""
    attrs = attributes(span.get("attributes"))
    trace_id = as_str(span.get("traceId"), "traceId")
    span_id = as_str(span.get("spanId"), "spanId")
    status = span.get("status") or {}
    if not isinstance(status, Mapping):
        raise RecordError("status", "expected an object")
    status_code = status.get("code")
    error_type = as_str(attrs.get("error.type"), "error.type")
    failed = error_type is not None or status_code in (2, "STATUS_CODE_ERROR")

    system, user = _texts(attrs.get("gen_ai.input.messages"), "gen_ai.input.messages")
    instructions = _texts(attrs.get("gen_ai.system_instructions"), "gen_ai.system_instructions")[1]
    response = _output_text(attrs.get("gen_ai.output.messages"))
    if user is None and response is None:
        system, user, response = _event_content(span)
    system = system or instructions

    peer = as_str(attrs.get("network.peer.address"), "network.peer.address")
    client = as_str(attrs.get("client.address"), "client.address")
    xff = _header(attrs, "x-forwarded-for")
    tools = attrs.get("gen_ai.tool.definitions")
    if isinstance(tools, str):
        try:
            tools = orjson.loads(tools)
        except orjson.JSONDecodeError:
            tools = None
    account = attrs.get("user.id") or attrs.get("enduser.id") or resource.get("user.id") or options.account_id
    return {
        "request_id": f"{trace_id}:{span_id}" if trace_id and span_id else None,
        "source_format": "otel",
        "start_time": as_time(span.get("startTimeUnixNano"), "startTimeUnixNano"),
        "end_time": as_time(span.get("endTimeUnixNano"), "endTimeUnixNano"),
        "account_id": as_str(account, "user.id"),
        "end_user_id": as_str(attrs.get("gen_ai.request.user") or attrs.get("enduser.id"), "enduser.id"),
        # client.address is the instrumentation's own resolution; redo it when the raw peer is known.
        "client_ip": resolve_client_ip(xff, peer, options.trusted_proxies) if peer else client,
        "user_agent": as_str(attrs.get("user_agent.original"), "user_agent.original"),
        "referer": _header(attrs, "http-referer") or _header(attrs, "referer"),
        "app_title": _header(attrs, "x-title"),
        "model_requested": as_str(attrs.get("gen_ai.request.model"), "gen_ai.request.model"),
        "model_served": as_str(attrs.get("gen_ai.response.model"), "gen_ai.response.model"),
        "call_type": as_str(attrs.get("gen_ai.operation.name"), "gen_ai.operation.name"),
        "status": "failure" if failed else "success",
        "error_code": as_str(attrs.get("http.response.status_code"), "http.response.status_code")
        if failed
        else None,
        "error_class": error_type or (as_str(status.get("message"), "status.message") if failed else None),
        "prompt_tokens": as_int(
            attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens")),
            "gen_ai.usage.input_tokens",
        ),
        "completion_tokens": as_int(
            attrs.get("gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens")),
            "gen_ai.usage.output_tokens",
        ),
        "reasoning_tokens": as_int(
            attrs.get(
                "gen_ai.usage.reasoning.output_tokens", attrs.get("gen_ai.usage.output_tokens.reasoning")
            ),
            "gen_ai.usage.reasoning.output_tokens",
        ),
        "cached_tokens": as_int(
            attrs.get("gen_ai.usage.cache_read.input_tokens", attrs.get("gen_ai.usage.input_tokens.cached")),
            "gen_ai.usage.cache_read.input_tokens",
        ),
        "temperature": as_float(attrs.get("gen_ai.request.temperature"), "gen_ai.request.temperature"),
        "max_tokens": as_int(attrs.get("gen_ai.request.max_tokens"), "gen_ai.request.max_tokens"),
        "n": as_int(attrs.get("gen_ai.request.choice.count"), "gen_ai.request.choice.count"),
        "tools_count": len(tools) if isinstance(tools, list) else None,
        "system_prompt": system,
        "user_text": user,
        "response_text": response,
        "content_present": user is not None,
    }
