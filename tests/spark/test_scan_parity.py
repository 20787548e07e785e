"""`scan --engine spark` runs every stage on Spark and writes what the DuckDB scan writes.

Both scans read the same simulated log; verdicts, risk, campaigns and attribution must agree
(time features differ by about 1e-8 relative between the engines, see test_spark_parity.py).
"""

import csv
import json
import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.pipeline import scan
from distillguard.store import ACCOUNT_SCORES, Store

# accounts.csv and campaigns.json round to 4 decimals: a 1e-8 difference may flip the last digit.
ROUNDED = 1.5e-4
pytestmark = pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")


def _inputs(sim: Path) -> tuple[list[Path], Path, list[Path]]:
    return [sim / "logs.jsonl.gz"], sim / "accounts.csv", sorted((sim / "intel").glob("*.json"))


@pytest.fixture(scope="module")
def duckdb_out(sim: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs, accounts, intel = _inputs(sim)
    out = tmp_path_factory.mktemp("scan-duckdb")
    scan(logs, out, accounts=accounts, intel=intel)
    return out


@pytest.fixture(scope="module")
def spark_out(sim: Path, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Through the CLI, as a user runs it; the store finds the running session and leaves it running."""
    logs, accounts, intel = _inputs(sim)
    out = tmp_path_factory.mktemp("scan-spark")
    args = ["scan", *map(str, logs), "--accounts", str(accounts), "--out", str(out), "--engine", "spark"]
    for path in intel:
        args += ["--intel", str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert spark.range(3).count() == 3
    return out


def _accounts(out: Path) -> dict[str, dict[str, str]]:
    with (out / "accounts.csv").open() as fh:
        return {row["account_id"]: row for row in csv.DictReader(fh)}


def _tally_order(items: list[Any]) -> list[Any]:
    """A campaign's counted values ({"value", <count>}) ordered by count, ties by value: the
    summaries keep the engine's row order among equal counts, which differs between engines."""
    if not all(isinstance(i, dict) and "value" in i and len(i) == 2 for i in items):
        return items
    return sorted(items, key=lambda i: (-next(v for k, v in i.items() if k != "value"), str(i["value"])))


def _assert_close(a: Any, b: Any, path: str = "") -> None:
    """Equal JSON values, floats within the outputs' rounding, counted values in any tie order."""
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, abs_tol=ROUNDED), f"{path}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            _assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(_tally_order(a), _tally_order(b), strict=True)):
            _assert_close(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_spark_store_holds_the_outputs(spark_out: Path) -> None:
    work = spark_out / "spark-store"
    for name in ("events", "request_signals", "account_features", "account_edges", ACCOUNT_SCORES):
        assert any((work / name).glob("*.parquet")), name
    for name in ("accounts.csv", "campaigns.json", "stix.json", "report.html", "summary.json"):
        assert (spark_out / name).exists(), name


def test_verdicts_and_risk_match(duckdb_out: Path, spark_out: Path) -> None:
    duck, spark = _accounts(duckdb_out), _accounts(spark_out)
    assert duck.keys() == spark.keys()
    verdicts = {row["verdict"] for row in duck.values()}
    assert "allow" in verdicts and len(verdicts) > 1
    for account, row in duck.items():
        other = spark[account]
        assert (row["verdict"], row["campaign_id"]) == (other["verdict"], other["campaign_id"]), account
        assert math.isclose(float(row["score"]), float(other["score"]), abs_tol=ROUNDED), account
    # The unrounded scores as stored by each engine.
    store = Store(duckdb_out / "distillguard.duckdb")
    stored = store.table(ACCOUNT_SCORES).to_pyarrow()
    store.close()
    a = dict(zip(stored["account_id"].to_pylist(), stored["score"].to_pylist(), strict=True))
    stored = pq.read_table(spark_out / "spark-store" / ACCOUNT_SCORES)
    b = dict(zip(stored["account_id"].to_pylist(), stored["score"].to_pylist(), strict=True))
    assert a.keys() == b.keys()
    assert all(math.isclose(a[k], b[k], rel_tol=1e-6, abs_tol=1e-9) for k in a)


def test_campaigns_match(duckdb_out: Path, spark_out: Path) -> None:
    duck = json.loads((duckdb_out / "campaigns.json").read_text())
    spark = json.loads((spark_out / "campaigns.json").read_text())
    assert duck, "the scenario should hold a campaign"
    _assert_close(duck, spark)
    summaries = [json.loads((out / "summary.json").read_text()) for out in (duckdb_out, spark_out)]
    for key in ("exchanges", "added", "accounts", "rejects", "campaigns", "verdicts"):
        assert summaries[0][key] == summaries[1][key], key
