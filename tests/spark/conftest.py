from collections.abc import Iterator
from pathlib import Path

import pytest

pyspark = pytest.importorskip("pyspark")

from distillguard.engines.spark import local_session  # noqa: E402
from distillguard.sim import simulate  # noqa: E402


@pytest.fixture(scope="session")
def spark() -> Iterator["pyspark.sql.SparkSession"]:
    """One local[2] session for every Spark test; the C1-only JIT roughly halves JVM start-up.

    Test inputs are tiny, so a query's time is its stages' fixed costs: one shuffle partition,
    no adaptive re-planning and no whole-stage code generation cut a scan's link stage by half.
    A full code cache would stop the JIT for the rest of the session.
    """
    session = local_session(
        "local[2]",
        {
            "spark.sql.shuffle.partitions": "1",
            "spark.default.parallelism": "2",
            "spark.sql.adaptive.enabled": "false",
            "spark.sql.codegen.wholeStage": "false",
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m",
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated week (about 2k requests, 78 accounts, two campaigns) every parity test reads."""
    out = tmp_path_factory.mktemp("sim")
    simulate("mixed", seed=3, scale=0.03, out=out)
    return out
