"""Threat intel in: STIX 2.1 bundles of intrusion sets and the indicators that point to them.

An indicator names an actor directly (indicator -indicates-> intrusion-set) or through an
earlier campaign (indicator -indicates-> campaign -attributed-to-> intrusion-set). Its pattern
is read with the STIX pattern parser; each comparison we can check against our logs becomes one
`Rule` (an IP network, an AS number, an account, an e-mail domain, a payment or a template
fingerprint). Comparisons we cannot check are ignored, not guessed at.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import stix2
from stix2patterns.v21.pattern import Pattern

RULE_TYPES: tuple[str, ...] = ("ip", "asn", "account", "email_domain", "payment", "template")


@dataclass(frozen=True)
class Rule:
    """One checkable comparison of an indicator, tied to an actor."""

    indicator_id: str
    actor_id: str
    type: str
    value: str  # CIDR text for ip; decimal text for asn; lower-case for domains


@dataclass
class Intel:
    """Actors (intrusion-set id -> name) and the rules that point to them."""

    actors: dict[str, str] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)

    def networks(self) -> list[tuple[Rule, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
        return [(r, ipaddress.ip_network(r.value, strict=False)) for r in self.rules if r.type == "ip"]


def load_intel(paths: Sequence[Path]) -> Intel:
    """Read STIX 2.1 bundles (JSON files) into actors and rules; custom objects are allowed."""
    objects: list[dict[str, Any]] = []
    for path in paths:
        bundle = stix2.parse(json.loads(Path(path).read_text()), allow_custom=True)
        objects += [
            json.loads(obj.serialize()) if hasattr(obj, "serialize") else dict(obj) for obj in bundle.objects
        ]
    return intel_from_objects(objects)


def intel_from_objects(objects: Iterable[dict[str, Any]]) -> Intel:
    objs = list(objects)
    intel = Intel(actors={o["id"]: o.get("name", o["id"]) for o in objs if o.get("type") == "intrusion-set"})
    rels = [o for o in objs if o.get("type") == "relationship"]
    campaign_actor = {
        r["source_ref"]: r["target_ref"]
        for r in rels
        if r["relationship_type"] == "attributed-to" and r["target_ref"] in intel.actors
    }
    indicates: dict[str, set[str]] = {}
    for r in rels:
        if r["relationship_type"] != "indicates":
            continue
        actor = r["target_ref"] if r["target_ref"] in intel.actors else campaign_actor.get(r["target_ref"])
        if actor:
            indicates.setdefault(r["source_ref"], set()).add(actor)
    for ind in (o for o in objs if o.get("type") == "indicator" and o.get("pattern_type", "stix") == "stix"):
        for actor in sorted(indicates.get(ind["id"], ())):
            intel.rules += [Rule(ind["id"], actor, t, v) for t, v in pattern_rules(ind["pattern"])]
    return intel


def pattern_rules(pattern: str) -> list[tuple[str, str]]:
    """(rule type, value) for each comparison in a STIX pattern that our logs can check."""
    out = []
    for obj_type, comparisons in Pattern(pattern).inspect().comparisons.items():
        for path, op, raw in comparisons:
            prop = ".".join(str(p) for p in path)
            value = raw.strip("'")
            rule = _rule(obj_type, prop, op, value)
            if rule:
                out.append(rule)
    return out


def _rule(obj_type: str, prop: str, op: str, value: str) -> tuple[str, str] | None:
    if obj_type in ("ipv4-addr", "ipv6-addr") and prop == "value" and op in ("=", "ISSUBSET"):
        return "ip", str(ipaddress.ip_network(value, strict=False))
    if obj_type == "autonomous-system" and prop == "number" and op == "=":
        return "asn", str(int(value))
    if obj_type == "user-account" and prop in ("user_id", "account_login") and op == "=":
        return "account", value
    if obj_type == "email-addr" and prop == "value" and op in ("=", "LIKE") and "@" in value:
        return "email_domain", value.rsplit("@", 1)[1].lower()
    if obj_type == "domain-name" and prop == "value" and op == "=":
        return "email_domain", value.lower()
    if "payment" in obj_type or "payment" in prop:
        return ("payment", value) if op == "=" else None
    if "template" in obj_type or "template" in prop:
        return ("template", value) if op == "=" else None
    return None
