"""Link accounts into campaigns: the account graph, community detection, campaign summaries."""

from distillguard.link.campaign import Campaign, LinkResult, find_campaigns
from distillguard.link.edges import (
    EDGE_KINDS,
    EDGE_SCHEMA,
    EdgeParams,
    build_edges,
    edge_table,
    event_nodes,
    split_node,
)

__all__ = [
    "EDGE_KINDS",
    "EDGE_SCHEMA",
    "Campaign",
    "EdgeParams",
    "LinkResult",
    "build_edges",
    "edge_table",
    "event_nodes",
    "find_campaigns",
    "split_node",
]
