"""Plotly figures for the report: capability mix over time, campaign timelines, campaign graphs.

Labels inside figures are HTML-escaped because Plotly renders a subset of HTML in hover text and
account ids or network names may come from outside. A campaign with more accounts than
`max_nodes` is drawn by infrastructure (/24 prefix, else ASN) so the graph stays readable.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from distillguard.link.edges import split_node

MAX_NODES = 300
MAX_EDGES = 3000  # drawn edges per graph; the strongest are kept
VERDICT_COLORS = {
    "allow": "#4c9f70",
    "review": "#e0b000",
    "throttle": "#e07b00",
    "verify": "#c0504d",
    "block": "#8b1a1a",
}
EDGE_COLORS = ("#5b8def", "#b56576", "#6a994e", "#8e7dbe", "#d08c60", "#888888")
TEMPLATE = "plotly_white"
_LAYOUT: dict[str, Any] = {
    "margin": {"l": 40, "r": 10, "t": 30, "b": 40},
    "height": 320,
    "legend": {"orientation": "h", "y": -0.2},
}


@contextmanager
def report_template() -> Iterator[None]:
    """Plotly's default template is `TEMPLATE` inside, as before after. A figure made there takes it
    without validation (4 ms); set on each figure's layout, plotly validates a copy of it every time
    (40 ms, and a report draws up to 121 figures). Setting the default validates it once, so
    `write_report` makes all its figures inside one of these."""
    before = pio.templates.default
    if before == TEMPLATE:
        yield
        return
    pio.templates.default = TEMPLATE
    try:
        yield
    finally:
        pio.templates.default = before


def _figure() -> go.Figure:
    """An empty figure on `TEMPLATE` (the same JSON as one given it in its layout)."""
    with report_template():
        return go.Figure()


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def capability_figure(rows: Sequence[Mapping[str, Any]], title: str) -> go.Figure:
    """Stacked requests per time bucket, one series per capability."""
    series: dict[str, dict[Any, int]] = defaultdict(dict)
    for r in rows:
        series[r["capability"]][r["bucket"]] = int(r["requests"])
    buckets = sorted({r["bucket"] for r in rows})
    fig = _figure()
    for cap in sorted(series):
        fig.add_trace(
            go.Bar(name=_esc(cap), x=buckets, y=[series[cap].get(b, 0) for b in buckets], hovertemplate=None)
        )
    fig.update_layout(barmode="stack", title={"text": _esc(title), "font": {"size": 13}}, **_LAYOUT)
    fig.update_yaxes(title_text="requests")
    return fig


@dataclass(frozen=True)
class GraphView:
    figure: go.Figure
    nodes: int
    edges: int
    grouped_by: str | None  # None: one node per account


def campaign_graph(
    accounts: Sequence[str],
    edges: Sequence[Mapping[str, Any]],
    infrastructure: Mapping[str, Mapping[str, Any]],
    account_info: Mapping[str, Mapping[str, Any]],
    max_nodes: int = MAX_NODES,
    seed: int = 0,
) -> GraphView:
    """A campaign's accounts and the edges tying them, or its networks when it is too large."""
    members = set(accounts)
    edges = [e for e in edges if e["src"] in members and e["dst"] in members]
    grouped_by = None
    if len(members) > max_nodes:
        grouped_by, node_of = _group(accounts, infrastructure, max_nodes)
    else:
        node_of = {a: a for a in accounts}

    sizes = Counter(node_of[a] for a in accounts)
    nodes = sorted(sizes)
    index = {n: i for i, n in enumerate(nodes)}
    weight: dict[tuple[int, int, str], float] = defaultdict(float)
    for e in edges:
        a, b = index[node_of[e["src"]]], index[node_of[e["dst"]]]
        if a != b:
            weight[(min(a, b), max(a, b), str(e.get("kind", "edge")))] += float(e.get("weight", 1.0) or 1.0)
    drawn = sorted(weight.items(), key=lambda kv: -kv[1])[:MAX_EDGES]
    pos = spring_layout(len(nodes), [(a, b, w) for (a, b, _), w in drawn], seed=seed)

    fig = _figure()
    kinds = sorted({k for (_, _, k), _ in drawn})
    for color, kind in zip(EDGE_COLORS * (len(kinds) // len(EDGE_COLORS) + 1), kinds, strict=False):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for (a, b, k), _ in drawn:
            if k == kind:
                xs += [pos[a, 0], pos[b, 0], None]
                ys += [pos[a, 1], pos[b, 1], None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=_esc(kind),
                hoverinfo="skip",
                line={"width": 1.0, "color": color},
                opacity=0.6,
            )
        )
    fig.add_trace(_node_trace(nodes, pos, sizes, grouped_by, node_of, account_info, infrastructure))
    fig.update_layout(**_LAYOUT)
    fig.update_layout(height=420, showlegend=True)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    return GraphView(fig, len(nodes), len(drawn), grouped_by)


def _group(
    accounts: Sequence[str], infrastructure: Mapping[str, Mapping[str, Any]], max_nodes: int
) -> tuple[str, dict[str, str]]:
    """Map accounts to /24 prefixes, or to ASNs when prefixes are still too many; the rest to 'other'."""
    for key, name in (("ip_prefix", "network prefix"), ("asn", "ASN")):
        node_of = {a: _infra_label(infrastructure.get(a, {}), key) for a in accounts}
        if len(set(node_of.values())) <= max_nodes:
            return name, node_of
    keep = {n for n, _ in Counter(node_of.values()).most_common(max_nodes - 1)}
    return "ASN", {a: n if n in keep else "other ASNs" for a, n in node_of.items()}


def _infra_label(info: Mapping[str, Any], key: str) -> str:
    value = info.get(key)
    if value is None:
        return "unknown network"
    if key == "asn":
        return f"AS{value} {info.get('asn_org') or ''}".strip()
    return str(value)


def _node_trace(
    nodes: list[str],
    pos: np.ndarray,
    sizes: Counter[str],
    grouped_by: str | None,
    node_of: Mapping[str, str],
    account_info: Mapping[str, Mapping[str, Any]],
    infrastructure: Mapping[str, Mapping[str, Any]],
) -> go.Scatter:
    if grouped_by is None:
        info = [account_info.get(split_node(n)[0], {}) for n in nodes]
        colors = [VERDICT_COLORS.get(str(i.get("verdict")), "#999999") for i in info]
        marker_size = [8.0] * len(nodes)
        text = [
            f"{_esc(n)}<br>score {float(i.get('score') or 0):.2f} · {_esc(i.get('verdict', ''))}"
            f"<br>{_esc(infrastructure.get(n, {}).get('ip_prefix') or '')}"
            for n, i in zip(nodes, info, strict=True)
        ]
    else:
        flagged: Counter[str] = Counter(
            n
            for a, n in node_of.items()
            if account_info.get(split_node(a)[0], {}).get("verdict", "allow") != "allow"
        )
        share = [flagged[n] / sizes[n] for n in nodes]
        colors = [f"rgba(139,26,26,{0.25 + 0.75 * s:.2f})" for s in share]
        biggest = max(sizes.values())
        marker_size = [float(6 + 22 * np.sqrt(sizes[n] / biggest)) for n in nodes]
        text = [f"{_esc(n)}<br>{sizes[n]} accounts · {flagged[n]} flagged" for n in nodes]
    return go.Scatter(
        x=pos[:, 0],
        y=pos[:, 1],
        mode="markers",
        name="accounts" if grouped_by is None else _esc(grouped_by),
        text=text,
        hoverinfo="text",
        marker={"size": marker_size, "color": colors, "line": {"width": 0.5, "color": "#333"}},
    )


def spring_layout(
    n: int, edges: Sequence[tuple[int, int, float]], iterations: int = 60, seed: int = 0
) -> np.ndarray:
    """Fruchterman-Reingold positions in the unit square; O(n^2) per step, fine for a few hundred nodes."""
    rng = np.random.default_rng(seed)
    pos = rng.random((n, 2))
    if n < 2:
        return pos
    src = np.array([e[0] for e in edges], dtype=int)
    dst = np.array([e[1] for e in edges], dtype=int)
    w = np.array([e[2] for e in edges], dtype=float)
    w = w / w.max() if len(w) else w
    k = 1.0 / np.sqrt(n)
    temperature = 0.1
    for _ in range(iterations):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.maximum(np.linalg.norm(delta, axis=-1), 1e-3)
        disp = ((k * k / dist**2)[:, :, None] * delta).sum(axis=1)
        if len(src):
            d = pos[src] - pos[dst]
            dl = np.maximum(np.linalg.norm(d, axis=-1), 1e-3)
            pull = (dl / k * w)[:, None] * d
            np.add.at(disp, src, -pull)
            np.add.at(disp, dst, pull)
        length = np.maximum(np.linalg.norm(disp, axis=-1), 1e-9)
        pos += disp / length[:, None] * np.minimum(length, temperature)[:, None]
        temperature *= 0.95
    return pos
