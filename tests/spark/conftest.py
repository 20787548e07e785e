from collections.abc import Iterator

import pytest

pyspark = pytest.importorskip("pyspark")

from distillguard.engines.spark import local_session  # noqa: E402


@pytest.fixture(scope="session")
def spark() -> Iterator["pyspark.sql.SparkSession"]:
    """One local[2] session for every Spark test; the C1-only JIT roughly halves JVM start-up."""
    session = local_session(
        "local[2]",
        {
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
        },
    )
    yield session
    session.stop()
