import random

import networkx as nx
from pyspark.sql import SparkSession

from distillguard.engines.spark_graph import connected_components_spark


def test_components_match_networkx(spark: SparkSession) -> None:
    # A long path (many label-propagation rounds), a sparse random graph, a star and a self-loop.
    graph = nx.disjoint_union_all(
        [nx.path_graph(40), nx.gnp_random_graph(50, 0.05, seed=2), nx.star_graph(8), nx.empty_graph(1)]
    )
    graph.add_edge(99, 99)
    edges = [(f"n{u:03d}", f"n{v:03d}") for u, v in graph.edges()]
    random.Random(0).shuffle(edges)

    found = connected_components_spark(spark.createDataFrame(edges, "src string, dst string"))
    got = {row.node: row.component for row in found.collect()}

    expected = {n: min(c) for c in nx.connected_components(nx.Graph(edges)) for n in c}
    assert got == expected
    assert got["n099"] == "n099"
