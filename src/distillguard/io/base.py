"""What every reader shares: opening compressed files, rejecting bad records, typed field access.

A reader turns one log file into canonical `EVENT_SCHEMA` batches. A record that cannot be read
becomes a `Reject` naming file, line, field and reason; the reader then carries on, so one bad
line never costs the rest of the file.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import ipaddress
import math
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, TypeGuard, runtime_checkable

import orjson
import pyarrow as pa
import zstandard

from distillguard.schema import EVENT_SCHEMA, REQUIRED_EVENT_COLUMNS, rows_to_batch

DEFAULT_BATCH_ROWS = 20_000
# A raw log line: bytes, or a view of a mapped block of the file (`io.blocks`), which orjson parses as is.
Line = bytes | memoryview
_RAW_KEEP = 500  # characters of a rejected line kept for the analyst


class RecordError(ValueError):
    """A record that cannot become an event; `field` names the offending field path."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Reject:
    file: str
    line: int
    field: str
    reason: str
    raw: str = ""

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))


@dataclass
class RejectSink:
    """Collects rejected records; `write` persists them as JSON lines."""

    rejects: list[Reject] = field(default_factory=list)

    def add(self, file: Path | str, line: int, fld: str, reason: str, raw: Line | str = b"") -> None:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
        self.rejects.append(Reject(str(file), line, fld, reason, text[:_RAW_KEEP]))

    def __len__(self) -> int:
        return len(self.rejects)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            for r in self.rejects:
                fh.write(r.to_json() + b"\n")


@dataclass(frozen=True)
class ReadOptions:
    """Options every reader accepts; most readers use only a few."""

    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    batch_rows: int = DEFAULT_BATCH_ROWS
    # OpenAI Batch files carry no account: it comes from an envelope file or the CLI.
    account_id: str | None = None
    batch_envelope: Path | None = None
    # Ingest stores responses only when asked (`--keep-responses`): no stage reads them, and they
    # are most of a store's size. Readers that can skip them cheaply (Parquet: a column not read is
    # not decompressed; LiteLLM: the text is checked but not copied into Arrow) leave them null; the
    # others read them and ingest drops them.
    keep_responses: bool = False


def as_asked(options: ReadOptions, batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch as ingest stores it: without response text unless `options.keep_responses`."""
    return batch if options.keep_responses else without_responses(batch)


def without_responses(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with its response text dropped (nulls), every other column as it was."""
    at = batch.schema.get_field_index("response_text")
    return batch.set_column(at, batch.schema.field(at), pa.nulls(batch.num_rows, pa.string()))


class Reader(Protocol):
    """One log format. `sniff` looks at the first parsed record (None for binary formats)."""

    name: str

    def sniff(self, path: Path, first: Mapping[str, Any] | None) -> bool: ...

    def read(self, path: Path, rejects: RejectSink, options: ReadOptions) -> Iterator[pa.RecordBatch]: ...


@runtime_checkable
class LineReader(Reader, Protocol):
    """A format whose records are independent lines, so that runs of a file's lines can be converted
    apart, in other processes (the pipeline's parallel ingest). `read` is `read_lines` over every
    line of the file."""

    def read_lines(
        self, path: Path, lines: Iterable[tuple[int, Line]], rejects: RejectSink, options: ReadOptions
    ) -> Iterator[pa.RecordBatch]: ...


# --- opening files -------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def open_binary(path: Path) -> IO[bytes]:
    """Open a file, transparently decompressing gzip or zstd by magic bytes (not by extension)."""
    raw = path.open("rb")
    head = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if head.startswith(_ZSTD_MAGIC):
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return raw


def is_compressed(path: Path) -> bool:
    """Whether `open_binary` decompresses the file (gzip or zstd magic bytes)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith((_GZIP_MAGIC, _ZSTD_MAGIC))


STREAM_ERRORS = (EOFError, OSError, zlib.error, zstandard.ZstdError)


def iter_lines(path: Path, rejects: RejectSink) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, raw line) for non-blank lines; a broken stream becomes a reject."""
    lineno = 0
    try:
        with open_binary(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    yield lineno, line
    except STREAM_ERRORS as exc:
        rejects.add(path, lineno + 1, "<file>", f"unreadable or truncated compressed stream: {exc}")


def iter_json_lines(
    path: Path, rejects: RejectSink, lines: Iterable[tuple[int, Line]] | None = None
) -> Iterator[tuple[int, Line, dict[str, Any]]]:
    """Yield (line number, raw line, parsed object); lines that are not UTF-8 JSON objects are rejected.

    `lines` are the file's numbered lines (`iter_lines`), or a run of them that another process
    read (parallel ingest); rejects still name `path` and the line."""
    for lineno, line in iter_lines(path, rejects) if lines is None else lines:
        try:
            obj = orjson.loads(line)  # orjson validates UTF-8 itself: no second decode on the hot path
        except orjson.JSONDecodeError as exc:
            rejects.add(path, lineno, "<line>", _json_error(line, exc), line)
            continue
        if not isinstance(obj, dict):
            rejects.add(path, lineno, "<line>", f"expected a JSON object, got {type(obj).__name__}", line)
            continue
        yield lineno, line, obj


def _json_error(line: Line, exc: Exception) -> str:
    try:
        bytes(line).decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not UTF-8: {bad.reason} at byte {bad.start}"
    return f"malformed JSON: {exc}"


def first_json_record(path: Path, max_lines: int = 20) -> dict[str, Any] | None:
    """The first JSON object among the first `max_lines` non-blank lines of a file (for sniffing)."""
    for n, (_, line) in enumerate(iter_lines(path, RejectSink())):
        if n >= max_lines:
            break
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def first_line(path: Path, max_bytes: int = 65_536) -> str | None:
    """The first non-blank line of a text file as UTF-8 (for sniffing CSV headers), or None."""
    try:
        with open_binary(path) as fh:
            for line in fh:
                if line.strip():
                    return line[:max_bytes].decode("utf-8", "replace").strip().lstrip("\ufeff")
    except STREAM_ERRORS:
        return None
    return None


def iter_csv_records(path: Path, rejects: RejectSink) -> Iterator[tuple[int, bytes, dict[str, str]]]:
    """Yield (line number, raw line, row by header name) from a CSV file with a header row.

    Lines are decoded one by one so a non-UTF-8 line is one reject, not the end of the file; a
    quoted field spanning lines is read across them and reported at its first line.
    """
    state: dict[str, Any] = {"start": None, "line": 0, "raw": b""}

    def text_lines() -> Iterator[str]:
        for lineno, raw in iter_lines(path, rejects):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                rejects.add(path, lineno, "<line>", f"not UTF-8: {exc.reason} at byte {exc.start}", raw)
                continue
            if state["start"] is None:
                state["start"] = lineno
            state["line"], state["raw"] = lineno, raw
            yield text

    reader = csv.reader(text_lines())
    header: list[str] | None = None
    while True:
        state["start"] = None
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            rejects.add(path, state["line"], "<line>", f"malformed CSV: {exc}", state["raw"])
            continue
        lineno, raw = state["start"] or state["line"], state["raw"]
        if header is None:
            header = [h.strip().lstrip("\ufeff") for h in cells]
        elif len(cells) != len(header):
            rejects.add(path, lineno, "<line>", f"expected {len(header)} CSV fields, got {len(cells)}", raw)
        else:
            yield lineno, raw, dict(zip(header, cells, strict=True))


def batches_from_records(
    path: Path,
    records: Iterator[tuple[int, Line, Mapping[str, Any]]],
    convert: Any,
    rejects: RejectSink,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """Convert parsed records into events with `convert(record) -> dict`, batching the good ones."""
    rows: list[dict[str, Any]] = []
    for lineno, raw, obj in records:
        try:
            row = convert(obj)
            check_required(row)
        except RecordError as exc:
            rejects.add(path, lineno, exc.field, exc.reason, raw)
            continue
        rows.append(row)
        if len(rows) >= batch_rows:
            yield rows_to_batch(rows, EVENT_SCHEMA)
            rows = []
    if rows:
        yield rows_to_batch(rows, EVENT_SCHEMA)


# In schema order, so a record missing several required fields always names the same one.
_REQUIRED = tuple((i, name) for i, name in enumerate(EVENT_SCHEMA.names) if name in REQUIRED_EVENT_COLUMNS)


def check_required(row: Mapping[str, Any]) -> None:
    for _, name in _REQUIRED:
        if row.get(name) is None:
            raise RecordError(name, "required field missing")


def event_batches_from_tuples(
    path: Path,
    records: Iterator[tuple[int, Line, Mapping[str, Any]]],
    convert: Any,
    rejects: RejectSink,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """`batches_from_records` for a `convert(record) -> tuple` in EVENT_SCHEMA column order.

    Tuples instead of dicts, and one Arrow conversion per column instead of per row: the hot path
    of the high-volume formats. Timestamps may be given as epoch microseconds (`as_time_us`).
    """
    rows: list[tuple[Any, ...]] = []
    for lineno, raw, obj in records:
        try:
            row = convert(obj)
            for i, name in _REQUIRED:
                if row[i] is None:
                    raise RecordError(name, "required field missing")
        except RecordError as exc:
            rejects.add(path, lineno, exc.field, exc.reason, raw)
            continue
        rows.append(row)
        if len(rows) >= batch_rows:
            yield tuples_to_batch(rows)
            rows = []
    if rows:
        yield tuples_to_batch(rows)


def tuples_to_batch(rows: Sequence[tuple[Any, ...]], schema: pa.Schema = EVENT_SCHEMA) -> pa.RecordBatch:
    """A batch from row tuples in `schema` column order, converted column by column."""
    columns = zip(*rows, strict=True)
    return pa.RecordBatch.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )


# --- typed field access --------------------------------------------------------------------------

_NOT_MAPPINGS = frozenset({str, int, float, bool, list, type(None)})


def is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """`isinstance(value, Mapping)`, answered without the ABC machinery for what a JSON parser returns."""
    kind = type(value)
    if kind is dict:
        return True
    return kind not in _NOT_MAPPINGS and isinstance(value, Mapping)


def dig(obj: Mapping[str, Any], dotted: str) -> Any:
    """Value at a dotted path ('metadata.user_api_key_hash'), None when any step is missing."""
    cur: Any = obj
    for part in dotted.split("."):
        if not is_mapping(cur):
            return None
        cur = cur.get(part)
    return cur


def as_object(value: Any, fld: str) -> Mapping[str, Any]:
    """A JSON object given as a dict or as JSON text (database exports store JSON columns as text)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RecordError(fld, f"malformed JSON: {exc}") from exc
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(fld, f"expected a JSON object, got {type(value).__name__}")
    return value


def as_str(value: Any, fld: str) -> str | None:
    if type(value) is str:  # the common case first: one type check, no comparisons
        return value or None
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RecordError(fld, f"expected a string, got {type(value).__name__}")


_INT64 = range(-(2**63), 2**63)
_INTEGER = re.compile(r"\s*[-+]?\d+\s*")


def as_int(value: Any, fld: str) -> int | None:
    if value is None:
        return None
    if type(value) is int and -(2**63) <= value < 2**63:  # the common case, checked as below
        return value
    if value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(fld, "expected an integer, got bool")
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        number = int(value) if _INTEGER.fullmatch(value) else None
    if number is None:
        raise RecordError(fld, f"expected an integer, got {value!r:.40}")
    if number not in _INT64:  # Arrow's int64 would overflow on the whole batch
        raise RecordError(fld, f"integer out of 64-bit range: {value!r:.40}")
    return number


def as_float(value: Any, fld: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(fld, "expected a number, got bool")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise RecordError(fld, f"expected a number, got {value!r:.40}")


def as_bool(value: Any, fld: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise RecordError(fld, f"expected a boolean, got {value!r:.40}")


_MIN_TS, _MAX_TS = datetime(1990, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def as_time(value: Any, fld: str) -> datetime | None:
    """Epoch seconds (float), epoch nanoseconds (OTLP strings) or ISO 8601 text, as aware UTC."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int | float):
            ts = datetime.fromtimestamp(_epoch_seconds(float(value)), tz=UTC)
        elif isinstance(value, str):
            if _NUMERIC.fullmatch(value):  # epoch text, as CSV exports and OTLP write it
                ts = datetime.fromtimestamp(_epoch_seconds(float(value)), tz=UTC)
            else:
                ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
                ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        else:
            raise TypeError
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise RecordError(fld, f"expected a timestamp, got {value!r:.40}") from exc
    if not _MIN_TS <= ts < _MAX_TS:
        raise RecordError(fld, f"timestamp out of range: {value!r:.40}")
    return ts


_NUMERIC = re.compile(r"\s*-?\d+(\.\d*)?\s*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MIN_US, _MAX_US = (_MIN_TS - _EPOCH) // _US, (_MAX_TS - _EPOCH) // _US


def as_time_us(value: Any, fld: str) -> int | None:
    """`as_time` as epoch microseconds, the timestamp columns' storage, without a datetime per row.

    Epoch numbers (the common case) take the arithmetic `datetime.fromtimestamp` does: whole
    seconds plus the fraction rounded half-even to microseconds. Anything else goes through `as_time`.
    """
    kind = type(value)
    if kind is float or kind is int:
        seconds = _epoch_seconds(float(value)) if -1e300 < value < 1e300 else math.nan
        if 1e8 < seconds < 1e10:  # well inside what fromtimestamp accepts; the range check is below
            frac, whole = math.modf(seconds)
            us = int(whole) * 1_000_000 + round(frac * 1e6)
            if not _MIN_US <= us < _MAX_US:
                raise RecordError(fld, f"timestamp out of range: {value!r:.40}")
            return us
    ts = as_time(value, fld)
    return None if ts is None else (ts - _EPOCH) // _US


def _epoch_seconds(x: float) -> float:
    # OTLP writes nanoseconds; other exports milli- or microseconds. Seconds stay < 1e11 until
    # year 5138, so the magnitude tells the unit apart for any date in range.
    if abs(x) >= 1e17:
        return x / 1e9
    if abs(x) >= 1e14:
        return x / 1e6
    if abs(x) >= 1e11:
        return x / 1e3
    return x


# --- client IP -----------------------------------------------------------------------------------

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: Sequence[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in specs if s.strip())


def resolve_client_ip(
    forwarded_for: str | None, peer: str | None, trusted: Sequence[IPNetwork]
) -> str | None:
    """The client address: walk X-Forwarded-For from the right past our own trusted proxies.

    The right-most hop not in `trusted` is the first address we did not add ourselves, so a
    client that writes its own X-Forwarded-For cannot choose what we see. With no trusted
    proxies the peer address is the client, whatever the header says (None without a peer).
    """
    if not trusted:
        return _normalise_ip(peer) if peer and peer.strip() else None
    return _resolve_behind_proxies(forwarded_for, peer, tuple(trusted))


@functools.lru_cache(maxsize=65_536)  # (header, peer) pairs repeat per client and proxy hop
def _resolve_behind_proxies(
    forwarded_for: str | None, peer: str | None, trusted: tuple[IPNetwork, ...]
) -> str | None:
    hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    chain = [*hops, peer.strip()] if peer and peer.strip() else hops
    for hop in reversed(chain):
        addr = _parse_ip(hop)
        if addr is None:
            return hop  # an unparseable hop is untrusted by definition; keep it as evidence
        if not any(addr in net for net in trusted):
            return str(addr)
    return _normalise_ip(chain[0]) if chain else None


def _parse_ip(hop: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a hop, tolerating the ports proxies append ('1.2.3.4:80', '[::1]:443')."""
    if hop.startswith("[") and "]" in hop:
        hop = hop[1 : hop.index("]")]
    elif hop.count(":") == 1:
        hop = hop.split(":", 1)[0]
    try:
        return ipaddress.ip_address(hop)
    except ValueError:
        return None


@functools.lru_cache(maxsize=65_536)  # client addresses repeat across a log; parsing them is not free
def _normalise_ip(hop: str) -> str:
    addr = _parse_ip(hop.strip())
    return str(addr) if addr is not None else hop.strip()
