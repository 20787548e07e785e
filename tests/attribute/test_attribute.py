from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stix2
from campaign_world import World, build_world, scores_table, store_world

from distillguard.attribute import UNKNOWN_ACTOR, Attribution, attribute, export_stix, load_intel
from distillguard.link import Campaign, build_edges, find_campaigns

WHEN = "2025-12-15T00:00:00Z"


def _bundle(path: Path, actor: str, patterns: list[str]) -> Path:
    iset = stix2.IntrusionSet(name=actor, created=WHEN, modified=WHEN)
    old = stix2.Campaign(name=f"{actor} earlier", created=WHEN, modified=WHEN)
    inds = [
        stix2.Indicator(pattern=p, pattern_type="stix", valid_from=WHEN, created=WHEN, modified=WHEN)
        for p in patterns
    ]
    rels = [stix2.Relationship(i.id, "indicates", old.id if k % 2 else iset.id) for k, i in enumerate(inds)]
    rels.append(stix2.Relationship(old.id, "attributed-to", iset.id))
    path.write_text(stix2.Bundle(iset, old, *inds, *rels).serialize())
    return path


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("attr")
    world: World = build_world()
    store = store_world(world, tmp / "store.duckdb")
    signals = store.con.table("request_signals")
    edges = build_edges(store.events, signals, store.accounts)
    linked = find_campaigns(edges, scores_table(world), store.events, signals, store.accounts)
    paths = [
        _bundle(
            tmp / "alpha.json",
            "Alpha",
            [
                "[ipv4-addr:value ISSUBSET '203.0.113.0/24']",
                "[x-distillguard-payment-fingerprint:value = 'pay-A3']",
            ],
        ),
        # Gamma's only overlap with anything is a residential ISP that benign users share.
        _bundle(
            tmp / "gamma.json",
            "Gamma",
            ["[autonomous-system:number = 7922]", "[ipv4-addr:value = '9.9.9.9']"],
        ),
        _bundle(
            tmp / "delta.json",
            "Delta",
            ["[user-account:user_id = 'routeC0']", "[email-addr:value LIKE '%@tempmail.example']"],
        ),
    ]
    intel = load_intel(paths)
    result = attribute(linked.campaigns, store.events, signals, store.accounts, intel)
    by_truth = {world.truth[c.accounts[0]]: c for c in linked.campaigns}
    return {
        "world": world,
        "campaigns": linked.campaigns,
        "attr": result,
        "by_truth": by_truth,
        "intel": intel,
    }


def test_intel_rules_from_patterns(scan: dict[str, Any]) -> None:
    rules = {(r.type, r.value) for r in scan["intel"].rules}
    assert ("ip", "203.0.113.0/24") in rules and ("payment", "pay-A3") in rules and ("asn", "7922") in rules
    assert ("email_domain", "tempmail.example") in rules and ("account", "routeC0") in rules
    assert sorted(scan["intel"].actors.values()) == ["Alpha", "Delta", "Gamma"]


def test_attribution_with_evidence(scan: dict[str, Any]) -> None:
    attr: dict[str, Attribution] = scan["attr"]
    a = attr[scan["by_truth"]["A"].id]
    assert a.actor == "Alpha" and a.confidence >= 0.9
    assert {e["type"] for e in a.evidence} == {"ip", "payment"}
    c = attr[scan["by_truth"]["C"].id]
    assert c.actor == "Delta" and c.confidence >= 0.6


def test_benign_matching_indicator_alone_does_not_attribute(scan: dict[str, Any]) -> None:
    b = scan["attr"][scan["by_truth"]["B"].id]
    assert b.actor == UNKNOWN_ACTOR
    assert b.evidence and all(e["also_matches_benign"] and e["likelihood_ratio"] <= 2 for e in b.evidence)


def test_stix_bundle_parses_and_shares_no_prompts(scan: dict[str, Any]) -> None:
    campaigns: list[Campaign] = scan["campaigns"]
    bundle = export_stix(campaigns, scan["attr"])
    assert export_stix(campaigns, scan["attr"]) == bundle  # deterministic ids
    parsed = stix2.parse(json.dumps(bundle), allow_custom=False)
    types = [o.type for o in parsed.objects]
    assert types.count("campaign") == len(campaigns)
    assert {
        "intrusion-set",
        "indicator",
        "infrastructure",
        "relationship",
        "attack-pattern",
        "ipv4-addr",
    } <= set(types)
    sets = {o.name: o.id for o in parsed.objects if o.type == "intrusion-set"}
    assert set(sets) == {"Alpha", "Delta"}
    assert sets["Alpha"] in scan["intel"].actors  # the intel's id is reused, so partners can join on it
    refs = [r for o in parsed.objects if o.type == "campaign" for r in o.external_references]
    assert all(r.external_id == "AML.T0024.002" for r in refs)
    text = json.dumps(bundle)
    assert "x-distillguard-prompt-template:fingerprint = 'A-t0'" in text
    assert "user_text" not in text and 'prompt":' not in text
