"""The embedded store: one DuckDB file, reached through Ibis so the same queries run on Spark.

Appends are idempotent on `request_id`: a file ingested twice adds nothing the second time,
and a request id seen twice within one file is kept once. `EventStore` is what the pipeline
needs from a store; `engines.spark.SparkStore` is the other implementation.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import ibis
import pyarrow as pa
from ibis.expr.types import Table

from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA

if TYPE_CHECKING:
    from distillguard.context import CrossAccountContext

EVENTS = "events"
ACCOUNTS = "accounts"
# Tables the pipeline derives from events, in the order its stages write them.
REQUEST_SIGNALS = "request_signals"
ACCOUNT_FEATURES = "account_features"
ACCOUNT_EDGES = "account_edges"
ACCOUNT_SCORES = "account_scores"
_SCRATCH = "dg_scratch"  # the attached in-memory database of `Store.scratch_table`
ENGINES: tuple[str, ...] = ("duckdb", "spark")


class EventStore(Protocol):
    """What the pipeline reads and writes: events and accounts as Ibis tables on one backend (`con`),
    idempotent appends, and derived tables by name."""

    con: Any

    @property
    def events(self) -> Table: ...

    @property
    def accounts(self) -> Table: ...

    def append_events(self, batches: Iterable[pa.RecordBatch]) -> int: ...

    def upsert_accounts(self, table: pa.Table) -> int: ...

    def count_events(self) -> int: ...

    def table(self, name: str) -> Table:
        """A stored table (events, accounts or one the pipeline derived) by name."""
        ...

    def write_table(self, name: str, table: pa.Table, *, temp: bool = False) -> Table:
        """Store (replace) a derived table; `temp` ones live as long as the connection."""
        ...

    def materialize(self, name: str, expr: Table) -> Table:
        """Store (replace) a derived table computed in the engine from stored tables, never passing
        through Python: the account graph at scale has hundreds of millions of edges."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class EngineStages(Protocol):
    """A store that runs the signal and feature stages itself (Spark: on its executors).

    The pipeline delegates to these when a store has them; the DuckDB store has not, so its
    path is the pipeline's own batched loop.
    """

    def compute_request_signals(self) -> int: ...

    def compute_features(self, context: CrossAccountContext | None = None) -> pa.Table: ...


def open_store(engine: str, location: Path | str) -> EventStore:
    """A DuckDB file, or a Spark work directory of Parquet datasets (a local[2] session unless one runs)."""
    if engine == "duckdb":
        return Store(location)
    if engine == "spark":
        from distillguard.engines.spark import SparkStore

        return SparkStore(location)
    raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")


def most_frequent(t: Table, keys: Sequence[str], column: str, first_by: str = "start_time") -> Table:
    """Per `keys`, the most frequent non-null value of `column`; a tie goes to the value seen first
    by `first_by`, then to the smallest.

    Stands in for `.mode()`, which Ibis's pyspark backend does not compile; the tie-break is the
    one DuckDB's `mode` showed on stored events (first occurrence), now the same on every engine.
    Groups whose values are all null have no row, so callers left-join it.
    """
    known = t.filter(t[column].notnull())
    counts = known.group_by([*keys, column]).aggregate(n_rows=known.count(), first=known[first_by].min())
    rank = ibis.row_number().over(
        group_by=[counts[k] for k in keys],
        order_by=[ibis.desc(counts.n_rows), counts.first, counts[column]],
    )
    return counts.mutate(rank=rank).filter(lambda r: r["rank"] == 0).select(*keys, column)


def memory_limit() -> str:
    """DuckDB's memory limit: DISTILLGUARD_DUCKDB_MEMORY (e.g. "12GB"), else 35% of physical memory.

    DuckDB's own default (80%) leaves too little for the Python side of linking at scale: a scan of
    1.5M exchanges with 24k campaign accounts was killed for memory with it on a 24 GiB machine."""
    configured = os.environ.get("DISTILLGUARD_DUCKDB_MEMORY")
    if configured:
        return configured
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{max(1, int(total * 0.35 / 2**20))}MiB"


@contextmanager
def scratch() -> Iterator[Any]:
    """A private in-memory DuckDB connection for aggregating Arrow data, closed at the end of the block.

    ibis keeps an in-memory table registered for the life of the connection that ran it; on the
    shared default connection that is the life of the process (the link stage's millions of edges)."""
    con = ibis.duckdb.connect(memory_limit=memory_limit())
    try:
        yield con
    finally:
        con.disconnect()


class Store:
    """A DuckDB file (or ':memory:') holding `events` and `accounts` tables in the canonical schema."""

    def __init__(self, path: Path | str = ":memory:", con: Any = None) -> None:
        self.path = str(path)
        self.con = con if con is not None else ibis.duckdb.connect(self.path, memory_limit=memory_limit())
        tables = set(self.con.list_tables())
        if EVENTS not in tables:
            self.con.create_table(EVENTS, schema=ibis.Schema.from_pyarrow(EVENT_SCHEMA))
        if ACCOUNTS not in tables:
            self.con.create_table(ACCOUNTS, schema=ibis.Schema.from_pyarrow(ACCOUNT_SCHEMA))

    @property
    def events(self) -> Table:
        return self.con.table(EVENTS)

    @property
    def accounts(self) -> Table:
        return self.con.table(ACCOUNTS)

    def append_events(self, batches: Iterable[pa.RecordBatch]) -> int:
        """Insert the batches, then delete the rows whose request id was stored before them (or
        came earlier in them); returns rows added. One transaction, so a failure adds nothing.

        Inserted where they stay, not staged and copied: the copy of a million events cost as much
        as the first insert. The check for repeated ids reads one column of the whole table."""
        before = self.count_events()
        raw = self.con.con
        raw.begin()
        try:
            for batch in batches:
                if batch.num_rows:
                    self.append_arrow(EVENTS, pa.Table.from_batches([batch]))
            rows, ids = raw.execute(f'SELECT count(*), count(DISTINCT request_id) FROM "{EVENTS}"').fetchone()
            if ids != rows:
                # Row ids grow with insertion: the lowest of a request id's rows is the one stored first.
                raw.execute(
                    f'DELETE FROM "{EVENTS}" WHERE rowid IN (SELECT rowid FROM (SELECT rowid, row_number() '
                    f'OVER (PARTITION BY request_id ORDER BY rowid) AS nth FROM "{EVENTS}") WHERE nth > 1)'
                )
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        return self.count_events() - before

    def upsert_accounts(self, table: pa.Table) -> int:
        """Replace stored accounts by id with the given rows (the newest account file wins)."""
        table = table.select(ACCOUNT_SCHEMA.names).cast(ACCOUNT_SCHEMA)
        incoming = ibis.memtable(table).distinct(on="account_id", keep="last")
        kept = self.accounts.anti_join(incoming, "account_id").to_pyarrow().cast(ACCOUNT_SCHEMA)
        merged = pa.concat_tables([kept, incoming.to_pyarrow().cast(ACCOUNT_SCHEMA)])
        self.con.insert(ACCOUNTS, merged, overwrite=True)
        return table.num_rows

    def count_events(self) -> int:
        return int(self.events.count().execute())

    def table(self, name: str) -> Table:
        return self.con.table(name)

    @contextmanager
    def _arrow_view(self, table: pa.Table) -> Iterator[str]:
        """The Arrow table as a DuckDB view for one statement, unregistered after it.

        Straight through DuckDB: ibis registers every in-memory table with DuckDB for the life of the
        connection, so inserting batch after batch through it kept them all, and with them (Arrow
        buffers being shared) the input batches their columns came from: 5 KB per exchange, 8 GiB
        by the end of the signals stage of a 1.5M-exchange scan."""
        raw = self.con.con
        view = f"_dg_arrow_{uuid.uuid4().hex}"
        raw.register(view, table)
        try:
            yield view
        finally:
            raw.unregister(view)

    def append_arrow(self, name: str, table: pa.Table) -> None:
        """Insert an Arrow table's rows into the table `name` (or `database.schema.name`), matching
        columns by name."""
        quoted = ".".join(f'"{part}"' for part in name.split("."))
        with self._arrow_view(table) as view:
            self.con.con.execute(f'INSERT INTO {quoted} BY NAME SELECT * FROM "{view}"')

    @contextmanager
    def scratch_table(self, schema: pa.Schema) -> Iterator[tuple[str, Table]]:
        """An empty in-memory table of `schema`, as (name for `append_arrow`, table), dropped on leaving.

        Not a TEMP table: that one is its connection's alone, and the pipeline reads through cursors
        of their own (`pipeline.stream`). An in-memory database attached to the store is seen by
        every cursor of it and never written to the file."""
        raw = self.con.con
        raw.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {_SCRATCH}")
        name = f"t_{uuid.uuid4().hex}"
        empty = ibis.Schema.from_pyarrow(schema)
        table = self.con.create_table(name, schema=empty, database=f"{_SCRATCH}.main")
        try:
            yield f"{_SCRATCH}.main.{name}", table
        finally:
            raw.execute(f'DROP TABLE IF EXISTS {_SCRATCH}.main."{name}"')

    def write_table(self, name: str, table: pa.Table, *, temp: bool = False) -> Table:
        """Create or replace the table `name` with an Arrow table's rows."""
        kind = "TEMP TABLE" if temp else "TABLE"
        with self._arrow_view(table) as view:
            self.con.con.execute(f'CREATE OR REPLACE {kind} "{name}" AS SELECT * FROM "{view}"')
        return self.con.table(name)

    def materialize(self, name: str, expr: Table) -> Table:
        """Create or replace the table `name` from an expression, inside DuckDB (spilling to disk)."""
        return self.con.create_table(name, expr, overwrite=True)

    def close(self) -> None:
        self.con.disconnect()
