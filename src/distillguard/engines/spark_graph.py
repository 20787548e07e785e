"""Connected components of account graphs too large for one machine, with plain Spark DataFrame ops.

The alternating large-star / small-star method (Kiveris et al., "Connected Components in
MapReduce and Beyond", SoCC 2014) rewires every edge towards the smallest node id it can reach;
it converges in O(log² n) rounds whatever the graph's diameter, where min-label propagation needs
as many rounds as the longest path. Each round is a few joins and aggregations, checkpointed so
the query plan stays short. No GraphFrames jars are needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_MAX_ROUNDS = 64


def connected_components_spark(edges: DataFrame, src: str = "src", dst: str = "dst") -> DataFrame:
    """One row per node in `edges`: (node, component), the component named by its smallest node id.

    Edges are undirected; node ids may be any orderable type (strings for account nodes).
    """
    from pyspark.sql import functions as F

    pairs = edges.select(F.col(src).alias("u"), F.col(dst).alias("v")).dropna()
    # Orient every edge from the larger id to the smaller one; a self-loop keeps an isolated node.
    current = _checkpoint(_oriented(pairs))
    for _ in range(_MAX_ROUNDS):
        rewired = _checkpoint(_small_star(_large_star(current)))
        # Both are sets of distinct edges, so equal sizes and inclusion mean nothing moved.
        if rewired.count() == current.count() and rewired.exceptAll(current).isEmpty():
            break
        current = rewired
    else:
        raise RuntimeError(f"connected components did not converge in {_MAX_ROUNDS} rounds")
    # After convergence every edge points from a node straight to its component's smallest id.
    nodes = current.select(F.col("u").alias("node"), F.col("v").alias("component"))
    roots = current.select(F.col("v").alias("node"), F.col("v").alias("component"))
    return nodes.union(roots).groupBy("node").agg(F.min("component").alias("component"))


def _oriented(pairs: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return pairs.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v")).distinct()


def _large_star(edges: DataFrame) -> DataFrame:
    """Connect every larger neighbour of a node to the smallest id in the node's closed neighbourhood."""
    from pyspark.sql import functions as F

    both = edges.union(edges.select(F.col("v").alias("u"), F.col("u").alias("v")))
    smallest = both.groupBy("u").agg(F.least(F.min("v"), F.col("u")).alias("m"))
    larger = both.filter(F.col("v") > F.col("u")).join(smallest, "u")
    linked = larger.select(F.col("v").alias("u"), F.col("m").alias("v"))
    # Keep nodes that have no larger neighbour (they appear only as a `v`) via their self-loops.
    loops = edges.filter(F.col("u") == F.col("v"))
    return _oriented(linked.union(loops))


def _small_star(edges: DataFrame) -> DataFrame:
    """Connect a node and its smaller neighbours to the smallest of them."""
    from pyspark.sql import functions as F

    smallest = edges.groupBy("u").agg(F.min("v").alias("m"))
    members = edges.join(smallest, "u")
    linked = members.select(F.col("v").alias("u"), F.col("m").alias("v")).union(
        smallest.select(F.col("u"), F.col("m").alias("v"))
    )
    return _oriented(linked)


def _checkpoint(frame: DataFrame) -> DataFrame:
    """Cut the lineage: reliably when the context has a checkpoint directory (clusters), else locally."""
    if frame.sparkSession.sparkContext.getCheckpointDir():
        return frame.checkpoint()
    return frame.localCheckpoint()


__all__ = ["connected_components_spark"]
