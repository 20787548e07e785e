"""Sharded scenarios (the `anthropic` scale, cut down): sizes on target, shards that read as one
world, canonical Parquet the Parquet reader accepts, and the same seed giving the same rows."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from distillguard.io import RejectSink, read_events
from distillguard.schema import EVENT_SCHEMA
from distillguard.sim.large import ANTHROPIC, ShardedScale, simulate_sharded

TINY = ShardedScale(exchanges=24_000, attacker_accounts=240, shards=3)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("sharded")
    return simulate_sharded("mixed", 11, out, TINY, workers=2), out


def _truth(out: Path) -> dict[str, dict[str, str]]:
    with (out / "truth.csv").open(newline="") as fh:
        return {r["account_id"]: r for r in csv.DictReader(fh)}


def test_totals_near_the_targets(run: tuple[dict, Path]) -> None:
    result, out = run
    assert 0.8 * TINY.exchanges <= result["exchanges"] <= 1.2 * TINY.exchanges
    assert 0.8 * TINY.attacker_accounts <= result["distiller_accounts"] <= 1.2 * TINY.attacker_accounts
    assert sorted(p.name for p in (out / "events").iterdir()) == [f"part-{k:04d}.parquet" for k in range(3)]
    assert ds.dataset(out / "events").count_rows() == result["exchanges"]


def test_the_preset_is_the_disclosed_campaign() -> None:
    # 16M exchanges and about 24k attacker accounts, shards small enough for one worker's memory.
    assert ANTHROPIC.exchanges == 16_000_000 and ANTHROPIC.attacker_accounts == 24_000
    assert ANTHROPIC.exchanges / ANTHROPIC.shards <= 250_000


def test_shards_share_actors_and_never_share_accounts(run: tuple[dict, Path]) -> None:
    _, out = run
    truth = _truth(out)
    with (out / "accounts.csv").open(newline="") as fh:
        ids = [r["account_id"] for r in csv.DictReader(fh)]
    assert len(ids) == len(set(ids)) == len(truth)
    shards_of: dict[str, set[int]] = {}
    for k, part in enumerate(sorted((out / "events").iterdir())):
        accounts = pa.compute.unique(ds.dataset(part).to_table(columns=["account_id"])["account_id"])
        for a in accounts.to_pylist():
            assert a in truth, f"{a} in {part.name} has no truth row"
            if truth[a]["label"] == "distiller":
                shards_of.setdefault(truth[a]["campaign_id"], set()).add(k)
    # Every campaign runs in every shard, under the one campaign id the linker should recover.
    assert len(shards_of) == 8 and all(len(s) == 3 for s in shards_of.values())
    servers = Counter()
    for part in sorted((out / "events").iterdir()):
        t = ds.dataset(part).to_table(columns=["account_id", "client_ip"]).to_pylist()
        hydra = {r["client_ip"] for r in t if truth[r["account_id"]]["campaign_id"] == "tarsier-hydra"}
        servers.update(hydra)
    assert len(servers) < 100  # one actor's servers and proxies, not fresh ones per shard


def test_parquet_is_canonical_and_reads_without_rejects(run: tuple[dict, Path]) -> None:
    result, out = run
    part = out / "events" / "part-0000.parquet"
    assert ds.dataset(part).schema.equals(EVENT_SCHEMA)
    rejects = RejectSink()
    rows = sum(b.num_rows for b in read_events(part, rejects))
    assert len(rejects) == 0 and 0 < rows < result["exchanges"]


def test_intel_and_end_user_truth_are_written(run: tuple[dict, Path]) -> None:
    _, out = run
    intel = sorted(p.name for p in (out / "intel").iterdir())
    assert intel == ["kestrel.json", "tarsier.json", "vesper.json"]
    with (out / "end_user_truth.csv").open(newline="") as fh:
        labels = Counter(r["label"] for r in csv.DictReader(fh))
    assert labels["distiller"] > 0 and labels["benign"] > 0


def test_same_seed_same_rows(run: tuple[dict, Path], tmp_path: Path) -> None:
    _, out = run
    simulate_sharded("mixed", 11, tmp_path, TINY, workers=1)
    for part in sorted((out / "events").iterdir()):
        assert ds.dataset(part).to_table().equals(ds.dataset(tmp_path / "events" / part.name).to_table())
    assert (out / "truth.csv").read_bytes() == (tmp_path / "truth.csv").read_bytes()
