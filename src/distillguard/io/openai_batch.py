"""OpenAI Batch API files: the input JSONL joined with its output and error JSONL on `custom_id`.

Input lines are `{custom_id, method, url, body}`; output and error lines are `{id, custom_id,
response: {status_code, request_id, body} | null, error: {code, message} | null}` (OpenAI docs,
"Batch API"; results come back in any order, so only `custom_id` pairs them).

Given any one file of a batch, the reader finds the others:

1. with `ReadOptions.batch_envelope` (the Batch object as the API returns it), the files named
   after its `input_file_id`, `output_file_id` and `error_file_id` (`file-abc.jsonl`, `.gz`, ...)
   next to the envelope or to the given file;
2. otherwise by sibling name: the last `input`, `output` or `error(s)` in the file name swapped
   for the others (`b1_output.jsonl` -> `b1_input.jsonl`, `b1_errors.jsonl`).

Each input request becomes one event, whichever file was given, with request id
`<batch id>:<custom_id>` (the envelope's `id`, else the file name without its role), so reading
the input and then the output adds nothing twice. Results with no input line still become events.
The account comes from `ReadOptions.account_id` or the envelope's `metadata.account_id`: batch
files do not name it. Results are held by `custom_id` while the input streams; the API caps a
batch at 50,000 requests, which bounds that memory.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from distillguard.io.base import (
    Line,
    ReadOptions,
    RecordError,
    RejectSink,
    as_bool,
    as_float,
    as_int,
    as_object,
    as_str,
    as_time,
    batches_from_records,
    dig,
    first_json_record,
    iter_json_lines,
)
from distillguard.io.messages import message_texts, response_text

_ROLE = re.compile(r"input|output|errors?")


def file_role(first: Mapping[str, Any] | None) -> str | None:
    """'input' or 'result' from a batch file's first line, None when it is neither."""
    if not first or "custom_id" not in first:
        return None
    if "body" in first and ("url" in first or "method" in first):
        return "input"
    if "response" in first or "error" in first:
        return "result"
    return None


class OpenAIBatchReader:
    name = "openai_batch"

    def sniff(self, path: Path, first: Mapping[str, Any] | None) -> bool:
        return file_role(first) is not None

    def read(self, path: Path, rejects: RejectSink, options: ReadOptions) -> Iterator[pa.RecordBatch]:
        try:
            batch = find_batch_files(path, options)
        except RecordError as exc:
            rejects.add(options.batch_envelope or path, 0, exc.field, exc.reason)
            return
        results: dict[str, _Result] = {}
        for result_path in batch.results:
            _index_results(result_path, rejects, results)

        def joined(obj: Mapping[str, Any]) -> dict[str, Any]:
            row = input_to_event(obj, batch)
            result = results.pop(row["custom_id"], None)
            if result is not None:
                row.update(result.fields)
            return _finish(row, batch)

        if batch.input is not None:
            yield from batches_from_records(
                batch.input, _unique(batch.input, rejects), joined, rejects, options.batch_rows
            )
        leftovers: dict[Path, list[tuple[int, Line, Mapping[str, Any]]]] = {}
        for result in results.values():
            leftovers.setdefault(result.path, []).append((result.line, result.raw, result.fields))
        for result_path, records in leftovers.items():
            yield from batches_from_records(
                result_path,
                iter(records),
                lambda fields: _finish(dict(fields), batch),
                rejects,
                options.batch_rows,
            )


@dataclass
class BatchFiles:
    """The files of one batch, its id for request ids, and what the envelope says."""

    batch_id: str
    input: Path | None
    results: list[Path]
    account_id: str | None
    fallback_time: Any = None
    endpoint: str | None = None


@dataclass
class _Result:
    path: Path
    line: int
    raw: Line
    fields: dict[str, Any] = field(default_factory=dict)


def find_batch_files(path: Path, options: ReadOptions) -> BatchFiles:
    """Pair the given file with the rest of its batch (see the module docstring for the rules)."""
    envelope = _load_envelope(options.batch_envelope) if options.batch_envelope else {}
    role = file_role(first_json_record(path))
    # input, output, error; "given" when the file itself is a result file. A file whose first lines
    # are not batch lines is read as input, so that each of its lines is rejected, not skipped.
    found = {"given" if role == "result" else "input": path}
    dirs = list(dict.fromkeys(d for d in (options.batch_envelope, path) if d))
    for key, slot in (("input_file_id", "input"), ("output_file_id", "output"), ("error_file_id", "error")):
        match = _find_by_id(envelope.get(key), [d.parent for d in dirs])
        if match is not None and match not in found.values():
            found.setdefault(slot, match)
    roles = list(_ROLE.finditer(path.name))
    if roles:
        head, tail = path.name[: roles[-1].start()], path.name[roles[-1].end() :]
        for slot, word in (("input", "input"), ("output", "output"), ("error", "error"), ("error", "errors")):
            sibling = path.with_name(head + word + tail)
            if sibling.is_file() and sibling not in found.values():
                found.setdefault(slot, sibling)
        stem = (head + tail).split(".")[0].strip("_-. ")
    else:
        stem = path.name.split(".")[0]
    metadata = as_object(envelope.get("metadata"), "envelope.metadata")
    return BatchFiles(
        batch_id=as_str(envelope.get("id"), "envelope.id") or stem or path.name,
        input=found.get("input"),
        results=[p for slot, p in found.items() if slot != "input"],
        account_id=options.account_id or as_str(metadata.get("account_id"), "envelope.metadata.account_id"),
        fallback_time=as_time(
            envelope.get("in_progress_at") or envelope.get("created_at"), "envelope.created_at"
        ),
        endpoint=as_str(envelope.get("endpoint"), "envelope.endpoint"),
    )


def _find_by_id(file_id: Any, dirs: list[Path]) -> Path | None:
    """A downloaded file named after its OpenAI file id (`file-abc.jsonl`, `file-abc.jsonl.gz`)."""
    if not isinstance(file_id, str) or not file_id or "/" in file_id:
        return None
    for d in dirs:
        for candidate in sorted(d.glob(glob.escape(file_id) + "*")):
            if candidate.is_file() and candidate.name.split(".")[0] == file_id:
                return candidate
    return None


def _load_envelope(path: Path) -> Mapping[str, Any]:
    try:
        return as_object(orjson.loads(path.read_bytes()), "envelope")
    except (OSError, orjson.JSONDecodeError) as exc:
        raise RecordError("<envelope>", f"unreadable batch envelope: {exc}") from exc


def _unique(path: Path, rejects: RejectSink) -> Iterator[tuple[int, Line, dict[str, Any]]]:
    """Input lines with a `custom_id` not seen before (the API requires them to be unique)."""
    seen: set[str] = set()
    for lineno, raw, obj in iter_json_lines(path, rejects):
        cid = obj.get("custom_id")
        if isinstance(cid, str) and cid in seen:
            rejects.add(path, lineno, "custom_id", f"duplicate custom_id {cid!r:.60}", raw)
            continue
        if isinstance(cid, str):
            seen.add(cid)
        yield lineno, raw, obj


def _index_results(path: Path, rejects: RejectSink, results: dict[str, _Result]) -> None:
    for lineno, raw, obj in iter_json_lines(path, rejects):
        try:
            fields = result_fields(obj)
        except RecordError as exc:
            rejects.add(path, lineno, exc.field, exc.reason, raw)
            continue
        if fields["custom_id"] in results:
            rejects.add(path, lineno, "custom_id", f"duplicate result for {fields['custom_id']!r:.60}", raw)
            continue
        results[fields["custom_id"]] = _Result(path, lineno, raw, fields)


def input_to_event(obj: Mapping[str, Any], batch: BatchFiles) -> dict[str, Any]:
    """The request half of an event from one input line (`/v1/chat/completions`, `/v1/responses`, ...)."""
    cid = as_str(obj.get("custom_id"), "custom_id")
    if cid is None:
        raise RecordError("custom_id", "required field missing")
    body = as_object(obj.get("body"), "body")
    url = as_str(obj.get("url"), "url") or batch.endpoint or ""
    if "embeddings" in url:
        system, user = None, _embedding_text(body.get("input"))
    else:
        prompt = body.get("messages", body.get("input", body.get("prompt")))
        system, user = message_texts(prompt, "body.messages")
        instructions = as_str(body.get("instructions"), "body.instructions")
        system = "\n\n".join(t for t in (instructions, system) if t) or None
    tools = body.get("tools") or body.get("functions")
    max_tokens = body.get("max_completion_tokens", body.get("max_output_tokens", body.get("max_tokens")))
    return {
        "custom_id": cid,
        "model_requested": as_str(body.get("model"), "body.model"),
        "stream": as_bool(body.get("stream"), "body.stream"),
        "temperature": as_float(body.get("temperature"), "body.temperature"),
        "max_tokens": as_int(max_tokens, "body.max_tokens"),
        "n": as_int(body.get("n"), "body.n"),
        "logprobs": as_bool(body.get("logprobs"), "body.logprobs"),
        "top_logprobs": as_int(body.get("top_logprobs"), "body.top_logprobs"),
        "tools_count": len(tools) if isinstance(tools, list) else None,
        "system_prompt": system,
        "user_text": user,
        "content_present": user is not None,
    }


def _embedding_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value) or None
    return None  # token-id arrays carry no text


def result_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The response half of an event from one output or error line."""
    cid = as_str(obj.get("custom_id"), "custom_id")
    if cid is None:
        raise RecordError("custom_id", "required field missing")
    response = as_object(obj.get("response"), "response")
    error = as_object(obj.get("error"), "error")
    body = as_object(response.get("body"), "response.body")
    status_code = as_int(response.get("status_code"), "response.status_code")
    body_error = as_object(body.get("error"), "response.body.error")
    usage = as_object(body.get("usage"), "response.body.usage")
    ok = status_code is not None and 200 <= status_code < 300 and not error
    return {
        "custom_id": cid,
        "start_time": as_time(body.get("created") or body.get("created_at"), "response.body.created"),
        "model_served": as_str(body.get("model"), "response.body.model"),
        "status": "success" if ok else "failure",
        "error_code": None if ok else as_str(error.get("code") or status_code, "error.code"),
        "error_class": None if ok else as_str(body_error.get("type") or error.get("code"), "error.type"),
        "prompt_tokens": as_int(usage.get("prompt_tokens", usage.get("input_tokens")), "usage.prompt_tokens"),
        "completion_tokens": as_int(
            usage.get("completion_tokens", usage.get("output_tokens")), "usage.completion_tokens"
        ),
        "reasoning_tokens": as_int(
            dig(usage, "completion_tokens_details.reasoning_tokens")
            or dig(usage, "output_tokens_details.reasoning_tokens"),
            "usage.completion_tokens_details.reasoning_tokens",
        ),
        "cached_tokens": as_int(
            dig(usage, "prompt_tokens_details.cached_tokens")
            or dig(usage, "input_tokens_details.cached_tokens"),
            "usage.prompt_tokens_details.cached_tokens",
        ),
        "response_text": response_text(body, "response.body") if body else None,
    }


def _finish(row: dict[str, Any], batch: BatchFiles) -> dict[str, Any]:
    if batch.account_id is None:
        raise RecordError("account_id", "batch files name no account: give an account id or a batch envelope")
    cid = row.pop("custom_id")
    row["request_id"] = f"{batch.batch_id}:{cid}"
    row["source_format"] = "openai_batch"
    row["call_type"] = "batch"
    row["account_id"] = batch.account_id
    row["start_time"] = row.get("start_time") or batch.fallback_time
    if row["start_time"] is None:
        raise RecordError("start_time", "no response time and no batch envelope to date the request")
    # A request with no result line was never answered (expired or cancelled batch, or a missing file).
    row.setdefault("status", "failure")
    row.setdefault("error_class", "no_result")
    row.setdefault("content_present", False)
    return row
