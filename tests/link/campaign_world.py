"""A small labelled world for linking tests: benign hard negatives and three campaigns.

Benign: casual users, evaluation runners sweeping one public benchmark template, a university NAT,
a router with many genuine end users. Campaigns: a hydra cluster (burst sign-ups on one domain,
shared payment instruments, hosting /24s, round-robin turn-taking, low-and-slow members), a
chain-of-thought farm behind rotating residential proxies acting in synchronized hours, and a
campaign carried through the router's end-user ids.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.schema import ACCOUNT_SCHEMA, EVENT_SCHEMA, REQUEST_SIGNAL_SCHEMA, rows_to_batch
from distillguard.store import Store

T0 = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 3
HOSTING_PREFIXES = {"A": ["203.0.113", "198.51.100", "192.0.2"], "C": ["45.77.10"]}


@dataclass
class World:
    events: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    truth: dict[str, str] = field(default_factory=dict)  # node -> campaign id (distillers only)
    population: dict[str, str] = field(default_factory=dict)  # node -> population name

    def account(self, aid: str, created: datetime, domain: str, pay: str, score: float, pop: str) -> None:
        self.accounts.append(
            {
                "account_id": aid,
                "created_at": created,
                "email_domain": domain,
                "payment_fingerprint": pay,
                "country": "US",
                "account_type": "free",
                "verified": False,
            }
        )
        self.scores[aid] = score
        self.population[aid] = pop

    def request(self, aid: str, ts: datetime, ip: str, asn: int, ua: str, template: str, **kw: Any) -> None:
        rid = f"r{len(self.events):06d}"
        self.events.append(
            {
                "request_id": rid,
                "source_format": "litellm",
                "start_time": ts,
                "account_id": aid,
                "client_ip": ip,
                "user_agent": ua,
                "status": "success",
                "content_present": True,
                **kw,
            }
        )
        self.signals.append(
            {
                "request_id": rid,
                "ip_prefix": ip.rsplit(".", 1)[0] + ".0/24",
                "asn": asn,
                "asn_org": f"AS{asn}",
                "ip_kind": "hosting" if asn in (16509, 20473) else "residential",
                "ua_family": ua,
                "capability": "general",
                "capability_score": 0.5,
                "template_id": template,
                "prompt_chars": 200,
            }
        )


def _when(rng: random.Random) -> datetime:
    return T0 + timedelta(seconds=rng.uniform(0, DAYS * 86400))


def _home_ip(rng: random.Random) -> str:
    return f"{rng.randint(60, 90)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def build_world(seed: int = 7) -> World:
    rng = random.Random(seed)
    w = World()
    # Casual users: unique prompts, home IPs, webmail.
    for i in range(150):
        aid = f"casual{i:03d}"
        w.account(
            aid,
            T0 - timedelta(days=rng.randint(5, 400)),
            "gmail.com",
            f"pay-c{i}",
            rng.uniform(0, 0.2),
            "casual",
        )
        ip, asn = _home_ip(rng), rng.choice([7922, 3320, 2856])
        for _ in range(rng.randint(3, 30)):
            w.request(aid, _when(rng), ip, asn, "browser", f"u-{rng.getrandbits(40):010x}")
    # Evaluation runners: the same public benchmark templates, from the cloud, at their own times.
    for i in range(4):
        aid = f"evalrun{i}"
        w.account(
            aid,
            T0 - timedelta(days=90 + i),
            f"lab{i}.example",
            f"pay-e{i}",
            0.75 if i == 0 else 0.15,
            "eval_runner",
        )
        start = T0 + timedelta(hours=10 * i)
        for k in range(160):
            w.request(
                aid,
                start + timedelta(seconds=20 * k),
                f"54.{i}.0.{k % 200 + 1}",
                16509,
                "openai-python",
                f"bench-{k % 10}",
            )
    # University NAT: dozens of accounts behind two addresses of one /24.
    for i in range(20):
        aid = f"uni{i:02d}"
        w.account(
            aid,
            T0 - timedelta(days=rng.randint(30, 300)),
            "uni.example.edu",
            f"pay-u{i}",
            0.7 if i == 0 else rng.uniform(0, 0.2),
            "university_nat",
        )
        for _ in range(rng.randint(5, 25)):
            w.request(
                aid,
                _when(rng),
                f"130.10.5.{rng.choice([7, 8])}",
                1234,
                "browser",
                f"u-{rng.getrandbits(40):010x}",
            )
    # Router with many genuine end users; a campaign (C) also hides behind some of its end-user ids.
    w.account("router", T0 - timedelta(days=700), "router.example", "pay-router", 0.3, "router")
    for u in range(30):
        for _ in range(rng.randint(3, 12)):
            w.request(
                "router",
                _when(rng),
                f"34.1.1.{u + 1}",
                15169,
                "openai-python",
                f"u-{rng.getrandbits(40):010x}",
                end_user_id=f"user{u:02d}",
                referer="https://app.example",
            )
        w.population[f"router#user{u:02d}"] = "router"

    _hydra(w, rng)
    _cot_farm(w, rng)
    _routed(w, rng)
    return w


def _hydra(w: World, rng: random.Random) -> None:
    """Campaign A: burst sign-ups, shared payments, hosting /24s, round-robin over five templates."""
    members = [f"hydraA{i:02d}" for i in range(40)]
    for i, aid in enumerate(members):
        created = T0 - timedelta(days=2 + i // 10, seconds=rng.uniform(0, 240))
        w.account(aid, created, "quickmail.example", f"pay-A{i // 5}", rng.uniform(0.7, 0.99), "hydra")
        w.truth[aid] = "A"
    ts = T0 + timedelta(hours=1)
    for k in range(2400):
        aid = members[k % len(members)]
        prefix = HOSTING_PREFIXES["A"][k % 3]
        w.request(aid, ts, f"{prefix}.{k % 250 + 1}", 20473, "python-requests", f"A-t{k % 5}")
        ts += timedelta(seconds=rng.uniform(60, 100))
    # Low-and-slow members: a trickle of the same templates from home IPs, weakly scored.
    for i in range(6):
        aid = f"slowA{i}"
        w.account(
            aid,
            T0 - timedelta(days=rng.randint(30, 200)),
            "gmail.com",
            f"pay-sA{i}",
            rng.uniform(0.1, 0.3),
            "low_and_slow",
        )
        w.truth[aid] = "A"
        ip, asn = _home_ip(rng), 7922
        for _ in range(8):
            w.request(aid, _when(rng), ip, asn, "python-requests", f"A-t{rng.randrange(5)}")
        for _ in range(20):
            w.request(aid, _when(rng), ip, asn, "browser", f"u-{rng.getrandbits(40):010x}")


def _cot_farm(w: World, rng: random.Random) -> None:
    """Campaign B: residential proxy rotation, synchronized working hours, three templates."""
    members = [f"cotB{i:02d}" for i in range(20)]
    for i, aid in enumerate(members):
        w.account(
            aid,
            T0 - timedelta(days=rng.randint(10, 60)),
            "gmail.com",
            f"pay-B{i}",
            rng.uniform(0.55, 0.95),
            "cot_farm",
        )
        w.truth[aid] = "B"
    for hour in range(0, DAYS * 24, 3):
        for aid in members:
            for _ in range(rng.randint(3, 6)):
                ts = T0 + timedelta(hours=hour, seconds=rng.uniform(0, 3000))
                w.request(
                    aid,
                    ts,
                    _home_ip(rng),
                    rng.choice([7922, 3320, 2856, 5089]),
                    "openai-python",
                    f"B-t{rng.randrange(3)}",
                )


def _routed(w: World, rng: random.Random) -> None:
    """Campaign C: own hosting accounts plus end-user ids on the router, same templates and hours."""
    own = [f"routeC{i}" for i in range(8)]
    for aid in own:
        w.account(
            aid,
            T0 - timedelta(days=rng.randint(3, 9)),
            "tempmail.example",
            f"pay-C-{aid}",
            rng.uniform(0.6, 0.9),
            "routed",
        )
        w.truth[aid] = "C"
    via = [f"router#cuser{i}" for i in range(5)]
    for node in via:
        w.truth[node] = "C"
        w.population[node] = "routed"
    for hour in range(2, DAYS * 24, 4):
        for node in own + via:
            for _ in range(rng.randint(2, 4)):
                ts = T0 + timedelta(hours=hour, seconds=rng.uniform(0, 1800))
                tpl = f"C-t{rng.randrange(4)}"
                if "#" in node:
                    w.request(
                        "router",
                        ts,
                        f"34.1.1.{rng.randint(100, 120)}",
                        15169,
                        "openai-python",
                        tpl,
                        end_user_id=node.split("#")[1],
                    )
                else:
                    w.request(node, ts, f"45.77.10.{rng.randint(1, 250)}", 20473, "openai-python", tpl)


def store_world(w: World, path: Path) -> Store:
    """Write the world through the real Store: events, accounts and a request_signals table."""
    store = Store(path)
    store.append_events([rows_to_batch(w.events, EVENT_SCHEMA)])
    store.upsert_accounts(pa.Table.from_batches([rows_to_batch(w.accounts, ACCOUNT_SCHEMA)]))
    signals = pa.Table.from_batches([rows_to_batch(w.signals, REQUEST_SIGNAL_SCHEMA)])
    store.con.create_table("request_signals", signals, overwrite=True)
    return store


def scores_table(w: World) -> pa.Table:
    ids = sorted(w.scores)
    return pa.table({"account_id": ids, "score": [w.scores[a] for a in ids]})
