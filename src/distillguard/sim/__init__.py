"""Labeled traffic on real text: benign populations, distillation campaigns, threat intel.

`simulate(scenario, seed, scale, out)` writes, into `out`:

- `logs.jsonl.gz`: LiteLLM StandardLoggingPayload lines in time order,
- `accounts.csv`: the provider's account table,
- `truth.csv`: per account, label, campaign, actor, capability and population,
- `end_user_truth.csv`: which end users of distilling shared accounts (the reseller) distil,
- `intel/<actor>.json`: STIX 2.1 bundles on earlier campaigns of some actors.

The same seed gives the same bytes.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import numpy as np

from distillguard.sim.campaigns import CAMPAIGNS, Actor, make_actors
from distillguard.sim.core import Account, Ctx, Exchange
from distillguard.sim.intel import write_intel
from distillguard.sim.populations import POPULATIONS
from distillguard.sim.writer import (
    end_user_labels,
    write_accounts,
    write_end_user_truth,
    write_logs,
    write_truth,
)

# `mixed`: every population and campaign; `benign`: no campaign; a strategy name: benign plus that one.
SCENARIOS: tuple[str, ...] = ("mixed", "benign", *CAMPAIGNS)
SCALES: dict[str, float] = {"small": 1.0, "medium": 20.0}
# Named scales that are not a multiplier of `small` (see `sim.large`).
SHARDED_SCALES = ("anthropic",)


def _scale(scale: str | float) -> float:
    if isinstance(scale, str):
        if scale in SCALES:
            return SCALES[scale]
        try:
            return float(scale)
        except ValueError:
            raise ValueError(f"unknown scale {scale!r}; use one of {sorted(SCALES)} or a number") from None
    if scale <= 0:
        raise ValueError("scale must be positive")
    return float(scale)


def strategies(scenario: str) -> list[str]:
    """The campaign strategies a scenario runs."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    return [] if scenario == "benign" else list(CAMPAIGNS) if scenario == "mixed" else [scenario]


def generate(
    benign: Ctx, campaign: Ctx, run: list[str], actors: dict[str, Actor] | None = None
) -> tuple[list[Account], list[Exchange], dict[str, Actor]]:
    """Every benign population (sized by `benign`) and the `run` campaigns (sized by `campaign`),
    exchanges in time order. The two contexts may be one, or share a random stream; actors are
    made from `campaign` after the populations unless given (shards share one set)."""
    accounts: list[Account] = []
    exchanges: list[Exchange] = []
    for population in POPULATIONS.values():
        a, e = population(benign)
        accounts += a
        exchanges += e
    if actors is None:
        actors = make_actors(campaign)
    for strategy in run:
        actor, campaign_of = CAMPAIGNS[strategy]
        a, e = campaign_of(campaign, actors[actor])
        accounts += a
        exchanges += e
    exchanges.sort(key=lambda x: x.t)
    return accounts, exchanges, actors


def decoy_prefixes(exchanges: list[Exchange]) -> list[str]:
    """The university NAT's first /24: the decoy indicator of the intel overlaps this benign population."""
    nat = sorted(
        {
            str(ipaddress.ip_network(f"{x.ip}/24", strict=False))
            for x in exchanges
            if x.account.population == "university_nat"
        }
    )
    return nat[:1]


def simulate(
    scenario: str = "mixed",
    seed: int = 1,
    scale: str | float = "small",
    out: Path = Path("sim-out"),
    metadata_only: bool = False,
) -> dict[str, Any]:
    """Generate one scenario into `out`; returns counts and the paths written.

    `scale="anthropic"` writes the 16M-exchange scenario as canonical Parquet shards (`sim.large`).
    """
    if scale == "anthropic":
        from distillguard.sim.large import ANTHROPIC, simulate_sharded

        return simulate_sharded(scenario, seed, out, ANTHROPIC, metadata_only)
    ctx = Ctx(rng=np.random.default_rng(seed), scale=_scale(scale))
    accounts, exchanges, actors = generate(ctx, ctx, strategies(scenario))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs.jsonl.gz"
    n = write_logs(logs, exchanges, ctx.rng, metadata_only)
    write_accounts(out / "accounts.csv", accounts)
    write_truth(out / "truth.csv", accounts)
    write_end_user_truth(out / "end_user_truth.csv", end_user_labels(exchanges))
    intel = write_intel(ctx, out / "intel", actors, decoy_prefixes(exchanges))
    distillers = [a for a in accounts if a.label == "distiller"]
    return {
        "scenario": scenario,
        "seed": seed,
        "exchanges": n,
        "accounts": len(accounts),
        "distiller_accounts": len(distillers),
        "campaigns": sorted({a.campaign_id for a in distillers}),
        "paths": {
            "logs": str(logs),
            "accounts": str(out / "accounts.csv"),
            "truth": str(out / "truth.csv"),
            "end_user_truth": str(out / "end_user_truth.csv"),
            "intel": [str(p) for p in intel],
        },
    }


__all__ = ["SCALES", "SCENARIOS", "SHARDED_SCALES", "generate", "simulate", "strategies"]
