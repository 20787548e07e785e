from __future__ import annotations

import itertools
import json
from pathlib import Path

import ibis
import numpy as np
import pyarrow as pa
import pytest
from campaign_world import World, build_world, scores_table, store_world
from sklearn.metrics import adjusted_rand_score

from distillguard.link import EDGE_SCHEMA, build_edges, edge_table, find_campaigns
from distillguard.link.campaign import LinkResult
from distillguard.link.communities import (
    KIND_WEIGHTS,
    EngineTies,
    ProfileGate,
    Ties,
    average_linkage,
    suspicious_subgraph,
)
from distillguard.schema import REQUEST_SIGNAL_SCHEMA
from distillguard.store import Store, scratch


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Store, pa.Table, LinkResult]:
    world = build_world()
    store = store_world(world, tmp_path_factory.mktemp("link") / "store.duckdb")
    signals = store.con.table("request_signals")
    edges = build_edges(store.events, signals, store.accounts)
    result = find_campaigns(edges, scores_table(world), store.events, signals, store.accounts)
    return world, store, edges, result


def _truth_and_pred(world: World, result: LinkResult) -> tuple[list[str], list[str]]:
    pred = dict(
        zip(
            result.assignments["node"].to_pylist(), result.assignments["campaign_id"].to_pylist(), strict=True
        )
    )
    nodes = sorted(world.truth)
    return [world.truth[n] for n in nodes], [pred.get(n) or f"alone:{n}" for n in nodes]


def test_edges_have_schema_kinds_and_evidence(linked: tuple[World, Store, pa.Table, LinkResult]) -> None:
    _, _, edges, _ = linked
    assert edges.schema == EDGE_SCHEMA
    assert set(edges["kind"].to_pylist()) >= {"ip", "payment", "email_burst", "template", "sync", "turns"}
    rows = edges.to_pylist()
    assert all(r["src"] < r["dst"] and 0 < r["weight"] <= 1 for r in rows)
    assert all(isinstance(json.loads(r["evidence"]), dict) for r in rows)
    pay = [r for r in rows if r["kind"] == "payment"]
    assert pay and all(r["src"].startswith("hydraA") for r in pay)  # only the shared instruments link


def test_router_end_users_are_separate_nodes(linked: tuple[World, Store, pa.Table, LinkResult]) -> None:
    _, _, edges, _ = linked
    nodes = set(edges["src"].to_pylist()) | set(edges["dst"].to_pylist())
    assert "router" not in nodes
    assert any(n.startswith("router#cuser") for n in nodes)


def test_campaigns_match_truth_without_benign_members(
    linked: tuple[World, Store, pa.Table, LinkResult],
) -> None:
    world, _, _, result = linked
    truth, pred = _truth_and_pred(world, result)
    assert adjusted_rand_score(truth, pred) >= 0.9
    members = {n for c in result.campaigns for n in c.accounts}
    assert not members - set(world.truth), "a benign node was put in a campaign"


def test_low_and_slow_members_join_but_content_alone_never_lifts(
    linked: tuple[World, Store, pa.Table, LinkResult],
) -> None:
    world, _, _, result = linked
    rows = {r["node"]: r for r in result.assignments.to_pylist()}
    slow = [rows[n] for n in world.truth if n.startswith("slowA")]
    assert all(r["score"] < 0.5 for r in slow)
    # They share only templates (and their timing) with the campaign: members, but a generic template
    # shared with a casual user looks the same, so one evidence family never raises a score.
    assert sum(bool(r["campaign_id"]) for r in slow) >= len(slow) / 2
    assert all(r["lifted_score"] == r["score"] for r in slow)
    benign = [r for n, r in rows.items() if n not in world.truth]
    assert all(r["lifted_score"] == r["score"] for r in benign)


def test_campaign_summary_and_record(linked: tuple[World, Store, pa.Table, LinkResult]) -> None:
    _, _, _, result = linked
    hydra = next(c for c in result.campaigns if "hydraA00" in c.accounts)
    assert (
        hydra.volume >= 2400 and hydra.first_seen and hydra.last_seen and hydra.first_seen < hydra.last_seen
    )
    assert hydra.capability == {"general": 1.0}
    infra = hydra.infrastructure
    assert {p["value"] for p in infra["ip_prefixes"][:3]} == {
        "203.0.113.0/24",
        "198.51.100.0/24",
        "192.0.2.0/24",
    }
    assert infra["email_domains"][0]["value"] == "quickmail.example"
    assert len(infra["shared_payment_fingerprints"]) == 5
    assert {e["kind"] for e in hydra.edges} >= {"payment", "turns", "template"}
    record = json.loads(json.dumps(hydra.record({"actor": "x", "confidence": 0.9, "evidence": []})))
    assert record["attribution"]["actor"] == "x" and record["accounts"] == hydra.accounts
    assert result.account_campaigns()["hydraA00"] == hydra.id


def test_no_seeds_no_campaigns(linked: tuple[World, Store, pa.Table, LinkResult]) -> None:
    world, _, edges, _ = linked
    calm = pa.table({"account_id": sorted(world.scores), "score": [0.1] * len(world.scores)})
    result = find_campaigns(edges, calm)
    assert result.campaigns == []
    assert result.assignments["campaign_id"].null_count == result.assignments.num_rows


def test_empty_inputs(tmp_path: Path) -> None:
    store = Store(tmp_path / "empty.duckdb")
    signals = store.con.create_table(
        "request_signals", schema=ibis.Schema.from_pyarrow(REQUEST_SIGNAL_SCHEMA)
    )
    edges = build_edges(store.events, signals, store.accounts)
    assert edges.num_rows == 0
    assert (
        find_campaigns(
            edges, pa.table({"account_id": pa.array([], pa.string()), "score": pa.array([], pa.float64())})
        ).campaigns
        == []
    )


def _two_tied_groups(n: int) -> tuple[Ties, list[str], list[str]]:
    """Two tight groups of one actor (shared payment inside each), tied to each other by shared
    servers (weight 0.2 per pair)."""
    a, b = [f"a{i}" for i in range(n)], [f"b{i}" for i in range(n)]
    pairs: dict[tuple[str, str], tuple[float, set[str]]] = {}
    for group in (a, b):
        for i, x in enumerate(group):
            for y in group[i + 1 :]:
                pairs[(x, y)] = (1.0, {"payment"})
    for x in a:
        for y in b:
            pairs[(x, y)] = (0.2, {"ip"})
    return Ties.from_mapping(pairs), a, b


def _clusters(ties: Ties, gates: list[ProfileGate]) -> list[list[str]]:
    found = average_linkage(ties, np.ones(len(ties.nodes), dtype=bool), 0.5, 0.015, gates)
    return sorted(sorted(ties.nodes[m].tolist()) for m in found)


def test_shared_servers_do_not_merge_campaigns_that_harvest_different_capabilities() -> None:
    ties, a, b = _two_tied_groups(4)

    def clusters(profiles: dict[str, np.ndarray] | None, min_similarity: float = 0.0) -> list[list[str]]:
        return _clusters(
            ties, [ProfileGate("capability", profiles, min_similarity)] if profiles is not None else []
        )

    cot, code = np.array([9.0, 0, 0, 1]), np.array([0, 0, 8.0, 2])
    profiles = {**dict.fromkeys(a, cot), **dict.fromkeys(b, code)}
    assert len(clusters(None)) == 1  # without profiles: one campaign
    assert clusters(profiles, 0.5) == [a, b]
    assert len(clusters({n: cot for n in a + b}, 0.5)) == 1
    # Metadata-only nodes (no profile) fit either side.
    assert len(clusters({}, 0.5)) == 1


def test_campaigns_of_one_actor_stay_apart_when_they_ask_different_models() -> None:
    # Same capability, same servers; the scripts ask for different models.
    ties, a, b = _two_tied_groups(5)
    cot = {n: np.array([30.0, 0, 0, 0]) for n in a + b}

    def clusters(models: dict[str, np.ndarray]) -> list[list[str]]:
        return _clusters(ties, [ProfileGate("capability", cot, 0.5), ProfileGate("model", models, 0.9)])

    # 60/40 against 100/0 (cosine 0.83), 30 requests per account: the campaigns differ.
    mixed, only = np.array([18.0, 12.0]), np.array([30.0, 0.0])
    assert clusters({**dict.fromkeys(a, mixed), **dict.fromkeys(b, only)}) == [a, b]
    assert len(clusters(dict.fromkeys(a + b, mixed))) == 1


def test_profile_gate_tolerates_sampling_noise_of_small_accounts() -> None:
    from distillguard.link.communities import similar

    # Two accounts of one 50/50 campaign that sent ten requests each: cosine 0.47, chi-square p 0.007.
    assert similar(np.array([2.0, 8.0]), np.array([8.0, 2.0]), 0.9)
    # The same mixes over a thousand requests each are two different scripts.
    assert not similar(np.array([200.0, 800.0]), np.array([800.0, 200.0]), 0.9)
    # Identical and disjoint mixes; a node without a profile fits any.
    assert similar(np.array([5.0, 5.0]), np.array([50.0, 50.0]), 0.9)
    assert not similar(np.array([40.0, 0.0]), np.array([0.0, 40.0]), 0.9)
    assert similar(None, np.array([0.0, 40.0]), 0.9)


def test_same_mix_is_scipys_chi_square_test_of_homogeneity() -> None:
    from scipy.stats import chi2_contingency

    from distillguard.link.communities import DIFFERENT_P, _same_mix

    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 30, size=(200, 4)).astype(float), rng.integers(0, 30, size=(200, 4)).astype(float)
    x[:20, 3] = y[:20, 3] = 0  # a category neither side used does not count as a degree of freedom
    expected = []
    for row_x, row_y in zip(x, y, strict=True):
        used = (row_x + row_y) > 0
        expected.append(
            chi2_contingency(np.stack([row_x[used], row_y[used]]), correction=False)[1] > DIFFERENT_P
        )
    assert _same_mix(x, y).tolist() == expected
    assert 0 < sum(expected) < len(expected)


def test_pair_cap_lets_two_large_halves_of_one_campaign_merge_and_leaves_small_groups_alone() -> None:
    def halves(n: int) -> tuple[Ties, list[str], list[str]]:
        # Two groups of n, each a chain of sign-up-burst ties; member i of one shares a server hour
        # with member i of the other: sparse, as chained keys are at scale.
        a, b = [f"a{i:03d}" for i in range(n)], [f"b{i:03d}" for i in range(n)]
        pairs: dict[tuple[str, str], tuple[float, set[str]]] = {}
        for group in (a, b):
            for x, y in itertools.pairwise(group):
                pairs[(x, y)] = (1.0, {"email_burst"})
        for x, y in zip(a, b, strict=True):
            pairs[(x, y)] = (0.4, {"ip"})
        return Ties.from_mapping(pairs), a, b

    def count(ties: Ties, cap: int | None) -> int:
        return len(average_linkage(ties, np.ones(len(ties.nodes), dtype=bool), 0.5, 0.003, (), cap))

    big, _, _ = halves(200)  # mean tie 80 / 200**2 = 0.002; over 100 x 200 pairs 0.004
    assert count(big, None) == 2
    assert count(big, 100) == 1
    small, _, _ = halves(50)  # 20 / 50**2 = 0.008 either way
    assert count(small, None) == count(small, 100) == 1
    tiny, _, _ = halves(150)  # 60 / 150**2 = 0.0027 < 0.003; over 100 x 150 pairs 0.004
    assert count(tiny, None) == 2 and count(tiny, 100) == 1


def test_metadata_only_graphs_merge_at_the_lower_threshold() -> None:
    # Two groups joined only by thin infrastructure ties: mean tie 0.0012 over their 16 pairs, under
    # the content-graph threshold (0.0015), over the metadata-only one (0.001).
    a, b = [f"a{i}" for i in range(4)], [f"b{i}" for i in range(4)]
    rows = [(x, y, "payment", 1.0) for g in (a, b) for i, x in enumerate(g) for y in g[i + 1 :]]
    rows += [(x, y, "ip", 0.012) for x, y in zip(a, b, strict=True)]
    scores = pa.table({"account_id": a + b, "score": [0.9] * 8})

    def campaigns(extra: list[tuple[str, str, str, float]]) -> list[list[str]]:
        src, dst, kind, weight = zip(*(rows + extra), strict=True)
        edges = pa.table(
            {"src": src, "dst": dst, "kind": kind, "weight": weight, "evidence": ["{}"] * len(src)},
            schema=EDGE_SCHEMA,
        )
        return sorted(sorted(c.accounts) for c in find_campaigns(edges, scores).campaigns)

    assert campaigns([]) == [sorted(a + b)]
    # A shared template anywhere (two unscored users here) makes it a content graph.
    assert campaigns([("u1", "u2", "template", 0.5)]) == [a, b]


def test_stored_edges_link_like_fetched_ones(linked: tuple[World, Store, pa.Table, LinkResult]) -> None:
    world, store, edges, result = linked
    signals = store.con.table("request_signals")
    stored = store.materialize("account_edges", edge_table(store.events, signals, store.accounts))
    order = [(k, "ascending") for k in ("kind", "src", "dst")]
    kept = stored.to_pyarrow().cast(EDGE_SCHEMA).sort_by(order)
    assert kept.drop(["weight"]) == edges.drop(["weight"])
    assert np.allclose(kept["weight"].to_numpy(), edges["weight"].to_numpy(), rtol=1e-12)
    again = find_campaigns(stored, scores_table(world), store.events, signals, store.accounts)
    assert [c.accounts for c in again.campaigns] == [c.accounts for c in result.campaigns]
    assert [c.edges for c in again.campaigns] == [c.edges for c in result.campaigns]
    mine, theirs = again.assignments.to_pydict(), result.assignments.to_pydict()
    assert mine["node"] == theirs["node"] and mine["campaign_id"] == theirs["campaign_id"]
    assert np.allclose(mine["lifted_score"], theirs["lifted_score"], rtol=1e-12)


def test_engine_ties_read_only_the_suspicious_neighbourhood() -> None:
    # s1-s3 are seeds tied by payment; u is tied to all three; far1-far2 is a pair elsewhere.
    rows = [("s1", "s2", "payment", 1.0), ("s1", "s3", "payment", 1.0), ("s2", "s3", "payment", 1.0)]
    rows += [(s, "u", kind, 0.5) for s in ("s1", "s2", "s3") for kind in ("ip", "template")]
    rows += [("u", "v", "ip", 0.5), ("far1", "far2", "payment", 1.0), ("far1", "far2", "ip", 0.5)]
    src, dst, kind, weight = zip(*rows, strict=True)
    edges = pa.table(
        {"src": src, "dst": dst, "kind": kind, "weight": weight, "evidence": ["{}"] * len(src)},
        schema=EDGE_SCHEMA,
    )
    with scratch() as con:
        source = EngineTies(con.create_table("edges", edges))
        nodes = source.nodes.tolist()
        assert nodes == sorted(["s1", "s2", "s3", "u", "v", "far1", "far2"])
        ip, template, payment = (
            KIND_WEIGHTS["ip"] * 0.5,
            KIND_WEIGHTS["template"] * 0.5,
            KIND_WEIGHTS["payment"],
        )
        total = dict(zip(nodes, source.total.tolist(), strict=True))
        assert total["u"] == pytest.approx(3 * (ip + template) + ip)
        assert total["far1"] == pytest.approx(payment + ip)
        seeds = np.isin(source.nodes, ["s1", "s2", "s3"])
        near = source.touching(seeds, np.zeros(len(nodes), dtype=bool))
        pairs = {(nodes[a], nodes[b]): w for a, b, w in zip(near.a, near.b, near.weight, strict=True)}
        assert pairs.keys() == {
            ("s1", "s2"),
            ("s1", "s3"),
            ("s2", "s3"),
            ("s1", "u"),
            ("s2", "u"),
            ("s3", "u"),
        }
        assert pairs[("s1", "u")] == pytest.approx(ip + template)  # two kinds, one tie
        # Ties of the nodes that joined, without the ones read already.
        u = np.isin(source.nodes, ["u"])
        later = source.touching(u, seeds)
        assert [(nodes[a], nodes[b]) for a, b in zip(later.a, later.b, strict=True)] == [("u", "v")]

        seed_score = seeds.astype(float)
        in_graph, attached, ties = suspicious_subgraph(source, seed_score, 0.5)
    assert source.nodes[attached].tolist() == ["u"]
    assert sorted(source.nodes[in_graph].tolist()) == ["s1", "s2", "s3", "u"]
    read = {nodes[i] for i in np.concatenate([ties.a, ties.b])}
    assert read == {"s1", "s2", "s3", "u", "v"}  # never far1, far2


def test_edge_examples_are_keys_both_ends_share(linked: tuple[World, Store, pa.Table, LinkResult]) -> None:
    """The example key looked up for an edge of a request-keyed kind, against every key of that kind
    both ends share, computed from the stored rows in Python."""
    from distillguard.link.edges import (
        EVENT_KEYS,
        EdgeParams,
        _activity,
        _members,
        key_columns,
        key_text,
        shared_key_examples,
    )

    _, store, edges, result = linked
    signals = store.con.table("request_signals")
    wanted = edges.filter(pa.compute.is_in(edges["kind"], pa.array(list(EVENT_KEYS))))
    got = shared_key_examples(store.events, signals, wanted)
    p = EdgeParams()
    acts = _activity(store.events, signals, p)
    limit = max(2, int(p.max_key_share * acts.node.nunique().execute()))
    for kind, key in EVENT_KEYS.items():
        m = _members(acts, key(acts, p))
        members = m.select(key=key_text(m, key_columns(m)), node=m.node).to_pyarrow().to_pylist()
        keys_of: dict[str, set[str]] = {}
        size: dict[str, int] = {}
        for m in members:
            keys_of.setdefault(m["node"], set()).add(m["key"])
            size[m["key"]] = size.get(m["key"], 0) + 1
        rows = [r for r in wanted.to_pylist() if r["kind"] == kind]
        assert rows, kind
        for r in rows:
            shared = {k for k in keys_of[r["src"]] & keys_of[r["dst"]] if size[k] <= limit}
            assert got[(r["src"], r["dst"], kind)] == min(shared)
            assert json.loads(r["evidence"])["shared_keys"] >= 1
    # Campaign summaries carry the example in their edges' evidence.
    shown = [x for c in result.campaigns for e in c.edges for x in e["examples"] if e["kind"] in EVENT_KEYS]
    assert shown and all("example" in x["evidence"] for x in shown)
