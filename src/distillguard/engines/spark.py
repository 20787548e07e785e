"""The batch pipeline on Spark: the same readers, row-wise signals and Ibis features as on DuckDB.

`SparkStore` keeps `events`, `accounts` and `request_signals` as Parquet datasets under a work
directory and exposes them as Spark temp views reached through Ibis's pyspark backend, so
`features.account_features` runs unchanged. Request signals are `signals.request_signals` applied
per Arrow batch with `DataFrame.mapInArrow`: no second implementation of any feature or signal.
`SparkStore` is a `store.EventStore` with its own signal and feature stages, so
`pipeline.scan(..., engine="spark")` runs every later stage through the same Ibis expressions.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ibis.expr.types import Table

from distillguard.context import CrossAccountContext
from distillguard.features import account_features
from distillguard.io import ReadOptions, RejectSink
from distillguard.pipeline import ACCOUNT_FEATURES, REQUEST_SIGNALS, enriched_accounts, ingest
from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA, REQUEST_SIGNAL_SCHEMA
from distillguard.signals import SIGNAL_INPUTS
from distillguard.store import ACCOUNTS, EVENTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_SEQ = "_seq"
# Session settings the store relies on: UTC wall clock (Ibis sets it too), microsecond Parquet
# timestamps that pyarrow and DuckDB read back as written, Arrow for driver transfers, and the
# batch size the DuckDB pipeline uses (signals compute once per distinct value within a batch).
_STORE_CONF = {
    "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def local_session(master: str = "local[2]", conf: Mapping[str, str] | None = None) -> SparkSession:
    """A small local Spark session: no UI, few shuffle partitions, loopback networking."""
    from pyspark.sql import SparkSession

    settings = {
        # The stores keep no catalog tables; without this, listing tables creates ./spark-warehouse.
        "spark.sql.warehouse.dir": str(Path(tempfile.gettempdir()) / "distillguard-spark-warehouse"),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.driver.memory": "1g",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        **_STORE_CONF,
        **(conf or {}),
    }
    builder = SparkSession.builder.master(master).appName("distillguard")
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkStore:
    """Parquet datasets under `work_dir` read and written by Spark: a `store.EventStore`.

    Appends are idempotent on `request_id` as in the DuckDB store: a batch is staged as Parquet,
    deduplicated keeping its first row per id, anti-joined against stored events and appended.
    Derived tables (features, edges, scores) are Parquet datasets beside them.

    Without a `session` it uses the running one, or starts a `local_session()` and stops it on
    `close()`; a session it did not start is never stopped.
    """

    def __init__(self, work_dir: Path | str, session: SparkSession | None = None) -> None:
        from pyspark.sql import SparkSession

        self.work_dir = Path(work_dir).absolute()
        self._owns_session = session is None and SparkSession.getActiveSession() is None
        if session is None:
            session = local_session()
        self._root_session = session
        # A session of its own (sharing the context) keeps this store's views apart from another's.
        self.session = session.newSession()
        for key, value in _STORE_CONF.items():
            self.session.conf.set(key, value)
        self.con = ibis.pyspark.connect(self.session)
        for name, schema in self._datasets().items():
            path = self.work_dir / name
            if not path.exists():
                # An empty file gives the dataset its schema before the first append.
                path.mkdir(parents=True)
                pq.write_table(schema.empty_table(), path / "part-empty.parquet")
            self._refresh(name)

    @staticmethod
    def _datasets() -> dict[str, pa.Schema]:
        return {EVENTS: EVENT_SCHEMA, ACCOUNTS: ACCOUNT_SCHEMA, REQUEST_SIGNALS: REQUEST_SIGNAL_SCHEMA}

    def _path(self, name: str) -> str:
        return str(self.work_dir / name)

    def _refresh(self, name: str) -> None:
        # A view lists its files when created, so it is re-created after every write.
        self.session.read.parquet(self._path(name)).createOrReplaceTempView(name)

    def frame(self, name: str) -> DataFrame:
        """The Spark DataFrame behind a stored dataset."""
        return self.session.table(name)

    @property
    def events(self) -> Table:
        return self.table(EVENTS)

    @property
    def accounts(self) -> Table:
        return self.table(ACCOUNTS)

    @property
    def request_signals(self) -> Table:
        return self.table(REQUEST_SIGNALS)

    def table(self, name: str) -> Table:
        return _utc(self.con.table(name))

    def write_table(self, name: str, table: pa.Table, *, temp: bool = False) -> Table:
        """Replace the Parquet dataset `name` (written on the driver: derived tables are per account
        or per edge, not per request); a `temp` table is a view of driver memory instead."""
        if temp:
            self.session.createDataFrame(table).createOrReplaceTempView(name)
        else:
            path = Path(self._path(name))
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            pq.write_table(table, path / "part-0.parquet")
            self._refresh(name)
        return self.table(name)

    def materialize(self, name: str, expr: Table) -> Table:
        """Replace the Parquet dataset `name` with an expression's rows, written by the executors."""
        frame = self.session.sql(self.con.compile(expr))
        frame.write.mode("overwrite").parquet(self._path(name))
        self._refresh(name)
        return self.table(name)

    def append_events(self, batches: Iterable[pa.RecordBatch]) -> int:
        """Stage the batches as Parquet, then append the request ids not stored yet; returns rows added."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        staging = self.work_dir / "_staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        schema = EVENT_SCHEMA.append(pa.field(_SEQ, pa.int64(), nullable=False))
        seq = 0
        with pq.ParquetWriter(staging / "part-0.parquet", schema) as writer:
            for batch in batches:
                if batch.num_rows:
                    order = pa.array(range(seq, seq + batch.num_rows), pa.int64())
                    writer.write_batch(batch.cast(EVENT_SCHEMA).append_column(schema.field(_SEQ), order))
                    seq += batch.num_rows
        if not seq:
            shutil.rmtree(staging)
            return 0
        before = self.count_events()
        staged = self.session.read.parquet(str(staging))
        first = Window.partitionBy("request_id").orderBy(_SEQ)
        new = (
            staged.withColumn("_rank", F.row_number().over(first))
            .filter("_rank = 1")
            .join(self.frame(EVENTS).select("request_id"), "request_id", "left_anti")
            .select(*EVENT_SCHEMA.names)
        )
        new.write.mode("append").parquet(self._path(EVENTS))
        shutil.rmtree(staging)
        self._refresh(EVENTS)
        return self.count_events() - before

    def upsert_accounts(self, table: pa.Table) -> int:
        """Replace stored accounts by id with the given rows (the newest account file wins).

        Accounts are one row per customer, small enough for the driver even for large providers.
        """
        table = table.select(ACCOUNT_SCHEMA.names).cast(ACCOUNT_SCHEMA)
        last = {account: i for i, account in enumerate(table.column("account_id").to_pylist())}
        incoming = table.take(sorted(last.values()))
        stored = pq.read_table(self._path(ACCOUNTS), schema=ACCOUNT_SCHEMA)
        kept = stored.filter(pc.invert(pc.is_in(stored.column("account_id"), incoming.column("account_id"))))
        merged = pa.concat_tables([kept, incoming])
        path = Path(self._path(ACCOUNTS))
        shutil.rmtree(path)
        path.mkdir()
        pq.write_table(merged, path / "part-0.parquet")
        self._refresh(ACCOUNTS)
        return table.num_rows

    def count_events(self) -> int:
        return int(self.frame(EVENTS).count())

    def compute_request_signals(self) -> int:
        """Signals for stored events that have none yet, computed on the executors; returns rows added."""
        from pyspark.sql.pandas.types import from_arrow_schema

        before = self.frame(REQUEST_SIGNALS).count()
        done = self.frame(REQUEST_SIGNALS).select("request_id")
        todo = self.frame(EVENTS).join(done, "request_id", "left_anti")
        signals = todo.select(*SIGNAL_INPUTS).mapInArrow(
            _request_signals, from_arrow_schema(REQUEST_SIGNAL_SCHEMA)
        )
        signals.write.mode("append").parquet(self._path(REQUEST_SIGNALS))
        self._refresh(REQUEST_SIGNALS)
        return int(self.frame(REQUEST_SIGNALS).count()) - before

    def compute_features(self, context: CrossAccountContext | None = None) -> pa.Table:
        """`features.account_features` executed by Spark; also stored as the `account_features` dataset."""
        accounts = enriched_accounts(self)
        features = self.con.to_pyarrow(account_features(self.events, self.request_signals, accounts, context))
        self.write_table(ACCOUNT_FEATURES, features)
        return features

    def close(self) -> None:
        if self._owns_session:
            self._root_session.stop()


def _utc(table: Table) -> Table:
    """The table with its timestamps typed as UTC instants, as in the canonical schema and on DuckDB.

    Spark's TIMESTAMP is an instant already, but Ibis types it without a zone, so results would
    come back naive (campaign first/last seen without "+00:00"). The cast compiles to a no-op.
    """
    naive = {
        name: table[name].cast(dt.Timestamp(timezone="UTC", scale=dtype.scale))
        for name, dtype in table.schema().items()
        if dtype.is_timestamp() and dtype.timezone is None
    }
    return table.mutate(**naive) if naive else table


_SIGNAL_INPUT_SCHEMA = pa.schema([EVENT_SCHEMA.field(name) for name in SIGNAL_INPUTS])


def _request_signals(batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
    """mapInArrow body: Spark's batches back to their EVENT_SCHEMA types, then the one `request_signals`."""
    from distillguard.signals import request_signals

    for batch in batches:
        if batch.num_rows:
            yield request_signals(batch.cast(_SIGNAL_INPUT_SCHEMA))


def prepare_spark(
    paths: Sequence[Path],
    accounts: Path | None,
    work_dir: Path,
    session: SparkSession | None = None,
    rejects: RejectSink | None = None,
    options: ReadOptions | None = None,
    context: CrossAccountContext | None = None,
) -> pa.Table:
    """Ingest, request signals and account features on Spark; returns the features (as `pipeline.prepare`)."""
    store = SparkStore(work_dir, session)
    rejects = rejects if rejects is not None else RejectSink()
    try:
        ingest(store, paths, rejects, options or ReadOptions())
        if accounts is not None:
            from distillguard.io.accounts import read_accounts

            store.upsert_accounts(read_accounts(accounts, rejects))
        store.compute_request_signals()
        return store.compute_features(context)
    finally:
        store.close()


__all__ = ["SparkStore", "local_session", "prepare_spark"]
