"""Scenarios too large for memory: generated shard by shard, written as canonical Parquet.

The `anthropic` scale mirrors the campaign disclosed in 2026: 16M exchanges, about 24k attacker
accounts, among a benign population. Each shard is a complete `small`-shaped world of its own
(benign populations with their hard negatives, and a slice of every campaign), drawn from its own
random stream, so shards can be generated in parallel and memory stays bounded by one shard. The
actors, and with them their servers, proxies, e-mail domains and SDKs, are drawn once from the
seed and shared by every shard, so a campaign spread over all shards is one campaign to the linker.

Rows are exactly what ingesting the LiteLLM JSON lines would give: each exchange is rendered as a
StandardLoggingPayload and mapped by the LiteLLM reader's own function.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from distillguard.io.base import ReadOptions, tuples_to_batch
from distillguard.io.litellm import payload_to_tuple
from distillguard.schema import EVENT_SCHEMA
from distillguard.sim import decoy_prefixes, generate, strategies
from distillguard.sim.campaigns import Actor, make_actors
from distillguard.sim.core import Account, Ctx
from distillguard.sim.intel import write_intel
from distillguard.sim.writer import (
    ACCOUNT_COLUMNS,
    TRUTH_COLUMNS,
    account_rows,
    end_user_labels,
    render,
    truth_rows,
    write_end_user_truth,
)

# What one unit of scale (`small`) holds, measured on `mixed` seed 1: 32,373 benign and 18,533
# campaign exchanges, 500 campaign accounts besides the single reseller. Used only to size shards.
BENIGN_EXCHANGES_PER_UNIT = 32_373
CAMPAIGN_EXCHANGES_PER_UNIT = 18_533
CAMPAIGN_ACCOUNTS_PER_UNIT = 500
_ROW_GROUP = 65_536


@dataclass(frozen=True)
class ShardedScale:
    """Target totals, and how many shards to cut them into (each shard is held in memory once)."""

    exchanges: int
    attacker_accounts: int
    shards: int

    def campaign_scale(self) -> float:
        return self.attacker_accounts / CAMPAIGN_ACCOUNTS_PER_UNIT / self.shards

    def benign_scale(self) -> float:
        campaign = self.attacker_accounts / CAMPAIGN_ACCOUNTS_PER_UNIT * CAMPAIGN_EXCHANGES_PER_UNIT
        benign = max(self.exchanges - campaign, BENIGN_EXCHANGES_PER_UNIT * 0.1)
        return benign / BENIGN_EXCHANGES_PER_UNIT / self.shards


# 80 shards of about 200k exchanges: a few hundred MiB per worker.
ANTHROPIC = ShardedScale(exchanges=16_000_000, attacker_accounts=24_000, shards=80)


@dataclass(frozen=True)
class _Job:
    scenario: str
    seed: int
    shard: int
    scale: ShardedScale
    path: Path
    metadata_only: bool


@dataclass
class _ShardResult:
    rows: int
    accounts: list[Account]
    end_users: dict[tuple[str, str], tuple[str, str]]
    decoy: list[str]


def shared_actors(seed: int) -> tuple[Ctx, dict[str, Actor]]:
    """The actors of a sharded scenario, the same in every shard and in the parent."""
    ctx = Ctx(rng=np.random.default_rng([seed, 0]), scale=1.0)
    return ctx, make_actors(ctx)


def _write_shard(job: _Job) -> _ShardResult:
    rng = np.random.default_rng([job.seed, 1, job.shard])
    benign = Ctx(rng=rng, scale=job.scale.benign_scale())
    campaign = Ctx(rng=rng, scale=job.scale.campaign_scale(), counter=benign.counter)
    _, actors = shared_actors(job.seed)
    accounts, exchanges, _ = generate(benign, campaign, strategies(job.scenario), actors)
    options = ReadOptions(keep_responses=True)  # a gateway's Parquet log holds the responses
    tmp = job.path.with_suffix(".parquet.tmp")
    rows: list[tuple[Any, ...]] = []
    with pq.ParquetWriter(tmp, EVENT_SCHEMA, compression="zstd") as writer:
        for ex in exchanges:
            rows.append(payload_to_tuple(render(ex, rng, job.metadata_only), options))
            if len(rows) == _ROW_GROUP:
                writer.write_batch(tuples_to_batch(rows))
                rows = []
        if rows:
            writer.write_batch(tuples_to_batch(rows))
    tmp.replace(job.path)  # a crashed run never leaves a half shard under the final name
    return _ShardResult(len(exchanges), accounts, end_user_labels(exchanges), decoy_prefixes(exchanges))


def _results(jobs: list[_Job], workers: int) -> Iterator[_ShardResult]:
    if workers <= 1:
        yield from map(_write_shard, jobs)
        return
    # spawn: the parent may run threads (progress bars), which fork does not carry safely.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        yield from pool.map(_write_shard, jobs)


def simulate_sharded(
    scenario: str,
    seed: int,
    out: Path,
    scale: ShardedScale = ANTHROPIC,
    metadata_only: bool = False,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write `out/events/part-NNNN.parquet` plus the accounts, truth and intel files of `simulate`."""
    out = Path(out)
    events = out / "events"
    events.mkdir(parents=True, exist_ok=True)
    for stale in events.glob("part-*.parquet*"):
        stale.unlink()  # re-running with fewer shards must not leave the old ones behind
    jobs = [
        _Job(scenario, seed, k, scale, events / f"part-{k:04d}.parquet", metadata_only)
        for k in range(scale.shards)
    ]
    workers = workers or min(2, os.cpu_count() or 1)
    intel_ctx, actors = shared_actors(seed)
    n_rows = n_accounts = n_distillers = 0
    distillers: set[str] = set()
    end_users: dict[tuple[str, str], tuple[str, str]] = {}
    decoy: list[str] = []
    with (
        (out / "accounts.csv").open("w", newline="", encoding="utf-8") as acc_fh,
        (out / "truth.csv").open("w", newline="", encoding="utf-8") as truth_fh,
        Progress(
            TextColumn("[bold]shards"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
        ) as bar,
    ):
        acc_w, truth_w = csv.writer(acc_fh, lineterminator="\n"), csv.writer(truth_fh, lineterminator="\n")
        acc_w.writerow(ACCOUNT_COLUMNS)
        truth_w.writerow(TRUTH_COLUMNS)
        task = bar.add_task("shards", total=len(jobs))
        for result in _results(jobs, workers):
            acc_w.writerows(account_rows(result.accounts))
            truth_w.writerows(truth_rows(result.accounts))
            n_rows += result.rows
            n_accounts += len(result.accounts)
            for a in result.accounts:
                if a.label == "distiller":
                    n_distillers += 1
                    distillers.add(a.campaign_id)
                    if len(actors[a.actor].accounts) < 8:  # the intel reuses a few known accounts
                        actors[a.actor].accounts.append(a)
            end_users.update(result.end_users)
            decoy = decoy or result.decoy
            bar.advance(task)
    write_end_user_truth(out / "end_user_truth.csv", end_users)
    intel = write_intel(intel_ctx, out / "intel", actors, decoy)
    return {
        "scenario": scenario,
        "seed": seed,
        "exchanges": n_rows,
        "accounts": n_accounts,
        "distiller_accounts": n_distillers,
        "campaigns": sorted(distillers),
        "shards": scale.shards,
        "paths": {
            "logs": str(events),
            "accounts": str(out / "accounts.csv"),
            "truth": str(out / "truth.csv"),
            "end_user_truth": str(out / "end_user_truth.csv"),
            "intel": [str(p) for p in intel],
        },
    }
