"""DuckDB and Spark run the same readers, signals and Ibis features: their outputs must agree.

Spark divides timestamps in decimal arithmetic where DuckDB uses doubles, so time features agree
to about 1e-8 relative rather than bit for bit; everything else is exact.
"""

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from distillguard.engines.spark import prepare_spark
from distillguard.features import FEATURES
from distillguard.io import ReadOptions, RejectSink
from distillguard.pipeline import REQUEST_SIGNALS, prepare, score_accounts
from distillguard.policy import Policy
from distillguard.schema import REQUEST_SIGNAL_SCHEMA
from distillguard.score import RiskModel, feature_matrix
from distillguard.store import Store

RTOL = 1e-6
# pyspark 4.0's pandas conversions still pass a keyword pandas 3 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")


@pytest.fixture(scope="module")
def duckdb_run(sim: Path) -> tuple[pa.Table, pa.Table]:
    store = Store()
    _, features = prepare(store, [sim / "logs.jsonl.gz"], RejectSink(), ReadOptions(), sim / "accounts.csv")
    signals = store.con.table(REQUEST_SIGNALS).to_pyarrow()
    store.close()
    return features, signals


@pytest.fixture(scope="module")
def spark_run(
    sim: Path, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> tuple[pa.Table, pa.Table]:
    work = tmp_path_factory.mktemp("spark")
    features = prepare_spark([sim / "logs.jsonl.gz"], sim / "accounts.csv", work, spark)
    signals = pq.read_table(work / REQUEST_SIGNALS, schema=REQUEST_SIGNAL_SCHEMA)
    return features, signals


def _assert_same(duck: pa.Table, spark: pa.Table, key: str) -> None:
    duck, spark = duck.sort_by(key), spark.sort_by(key)
    assert duck.num_rows == spark.num_rows > 0
    assert duck.column(key).equals(spark.column(key))
    for name in duck.schema.names:
        a, b = duck.column(name), spark.column(name)
        if pa.types.is_floating(a.type) or pa.types.is_floating(b.type):
            x = np.asarray(a.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
            y = np.asarray(b.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
            np.testing.assert_allclose(y, x, rtol=RTOL, atol=1e-9, equal_nan=True, err_msg=name)
        else:
            assert a.cast(b.type).equals(b), name


def test_request_signals_match(
    duckdb_run: tuple[pa.Table, pa.Table], spark_run: tuple[pa.Table, pa.Table]
) -> None:
    duck, spark = duckdb_run[1], spark_run[1]
    assert duck.column("template_id").null_count < duck.num_rows
    _assert_same(duck.cast(REQUEST_SIGNAL_SCHEMA), spark, "request_id")


def test_features_match(duckdb_run: tuple[pa.Table, pa.Table], spark_run: tuple[pa.Table, pa.Table]) -> None:
    duck, spark = duckdb_run[0], spark_run[0]
    assert duck.schema.names == spark.schema.names == ["account_id", *FEATURES]
    _assert_same(duck, spark, "account_id")


def test_verdicts_match(
    sim: Path, duckdb_run: tuple[pa.Table, pa.Table], spark_run: tuple[pa.Table, pa.Table]
) -> None:
    duck, spark = duckdb_run[0], spark_run[0]
    with (sim / "truth.csv").open() as fh:
        distiller = {row["account_id"]: row["label"] != "benign" for row in csv.DictReader(fh)}
    y = np.array([distiller[a] for a in duck.column("account_id").to_pylist()], dtype=int)
    assert 3 <= y.sum() <= len(y) - 3
    model = RiskModel(max_iter=20).fit(feature_matrix(duck), y)
    policy = Policy.load()
    a, b = score_accounts(duck, model, policy), score_accounts(spark, model, policy)
    assert a.column("verdict").to_pylist() == b.column("verdict").to_pylist()
    assert set(a.column("verdict").to_pylist()) != {"allow"}
    np.testing.assert_allclose(b.column("score").to_numpy(), a.column("score").to_numpy(), atol=1e-9)


def test_a_partition_with_the_merged_context_matches_on_spark(
    sim: Path, spark: SparkSession, duckdb_run: tuple[pa.Table, pa.Table], tmp_path: Path
) -> None:
    # Pass 1 on DuckDB (each partition's context, merged); pass 2 for partition 0 on Spark.
    from distillguard.context import CrossAccountContext, write_partitions
    from distillguard.pipeline import cross_account_context

    parts = write_partitions(sim / "logs.jsonl.gz", tmp_path, 2)
    contexts = []
    for part in parts:
        store = Store()
        prepare(store, [part], RejectSink(), ReadOptions(), sim / "accounts.csv")
        contexts.append(cross_account_context(store))
        store.close()
    merged = CrossAccountContext.merge(contexts)
    got = prepare_spark([parts[0]], sim / "accounts.csv", tmp_path / "spark", spark, context=merged)
    full, _ = duckdb_run
    where = {a: i for i, a in enumerate(full.column("account_id").to_pylist())}
    want = full.take(pa.array([where[a] for a in got.column("account_id").to_pylist()]))
    assert got.num_rows > 0
    _assert_same(want, got, "account_id")
