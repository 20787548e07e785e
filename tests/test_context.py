"""A partition of the accounts scanned with the run's merged cross-account context computes the
same account features as the whole log does for those accounts; alone it does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from distillguard.context import CrossAccountContext, account_partition, with_release, write_partitions
from distillguard.features import FEATURES
from distillguard.io import ReadOptions, RejectSink
from distillguard.pipeline import cross_account_context, prepare
from distillguard.sim import simulate
from distillguard.store import Store

PARTS = 3


def _features(work: Path, name: str, log: Path, accounts: Path, context: CrossAccountContext | None = None):
    store = Store(work / f"{name}.duckdb")
    _, features = prepare(store, [log], RejectSink(), ReadOptions(), accounts, context=context)
    return store, features


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    work = tmp_path_factory.mktemp("context")
    simulate("mixed", seed=11, scale=0.1, out=work / "sim")
    log = next(iter(sorted((work / "sim").glob("logs*.jsonl*"))))
    paths = write_partitions(log, work, PARTS)
    return work, log, paths


def _differing(full: pa.Table, part: pa.Table) -> set[str]:
    where = {a: i for i, a in enumerate(full.column("account_id").to_pylist())}
    full = full.take(pa.array([where[a] for a in part.column("account_id").to_pylist()]))
    out = set()
    for name in FEATURES:
        x = np.asarray(full[name].to_pylist(), dtype=float)
        y = np.asarray(part[name].to_pylist(), dtype=float)
        if not np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True):
            out.add(name)
    return out


@pytest.fixture(scope="module")
def runs(world: tuple[Path, Path, list[Path]]) -> tuple[pa.Table, CrossAccountContext, CrossAccountContext]:
    """(full run's features, the whole log's context, the partitions' contexts merged)."""
    work, log, parts = world
    accounts = work / "sim" / "accounts.csv"
    store, full = _features(work, "full", log, accounts)
    whole = cross_account_context(store)
    store.close()
    contexts = []
    for i, path in enumerate(parts):
        store, _ = _features(work, f"part-{i}", path, accounts)
        contexts.append(cross_account_context(store))
        store.close()
    return full, whole, CrossAccountContext.merge(contexts)


def test_partition_with_merged_context_equals_the_full_run(
    world: tuple[Path, Path, list[Path]], runs: tuple[pa.Table, CrossAccountContext, CrossAccountContext]
) -> None:
    work, _, parts = world
    full, whole, merged = runs
    # The merged partial contexts are the whole log's context.
    for got, want, key in (
        (merged.templates, whole.templates, "template_id"),
        (merged.prefixes, whole.prefixes, "ip_prefix"),
        (merged.models, whole.models, "model_requested"),
    ):
        assert got.sort_by(key).to_pylist() == want.sort_by(key).to_pylist()

    accounts = work / "sim" / "accounts.csv"
    store, alone = _features(work, "part-0-again", parts[0], accounts)
    store.close()
    store, with_context = _features(work, "part-0-context", parts[0], accounts, merged)
    store.close()
    assert with_context.num_rows == alone.num_rows > 0
    assert _differing(full, with_context) == set()
    # Alone, the partition undercounts the accounts it shares templates and prefixes with.
    assert {"template_shared_accounts_mean", "prefix_accounts_mean"} <= _differing(full, alone)


def test_scan_cli_takes_a_saved_context(
    world: tuple[Path, Path, list[Path]], runs: tuple[pa.Table, CrossAccountContext, CrossAccountContext]
) -> None:
    from typer.testing import CliRunner

    from distillguard.cli import app
    from distillguard.store import ACCOUNT_FEATURES

    work, _, parts = world
    full, _, merged = runs
    merged.save(work / "context")
    out = work / "cli-part-1"
    args = ["scan", str(parts[1]), "--accounts", str(work / "sim" / "accounts.csv"), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--context", str(work / "context")])
    assert result.exit_code == 0, result.output
    store = Store(out / "distillguard.duckdb")
    got = store.con.table(ACCOUNT_FEATURES).to_pyarrow()
    store.close()
    assert got.num_rows > 0 and _differing(full, got) == set()


def test_context_round_trips_and_names_a_missing_folder(tmp_path: Path) -> None:
    ctx = CrossAccountContext(
        pa.table({"template_id": ["t1", None], "tpl_accounts": [3, 1]}),
        pa.table({"ip_prefix": ["10.0.0.0/24"], "pfx_accounts": [2]}),
        pa.table({"model_requested": ["m1", "m2"], "model_first": [0.0, 200_000.0]}),
    )
    ctx.save(tmp_path / "ctx")
    back = CrossAccountContext.load(tmp_path / "ctx")
    assert back.templates.to_pylist() == ctx.templates.to_pylist()
    assert back.models.to_pylist() == ctx.models.to_pylist()
    _, _, models = back.tables()
    assert with_release(models).to_pyarrow().column("model_released").to_pylist() == [False, True]
    with pytest.raises(FileNotFoundError, match="no cross-account context"):
        CrossAccountContext.load(tmp_path / "elsewhere")


def test_partitions_hold_disjoint_whole_accounts(world: tuple[Path, Path, list[Path]]) -> None:
    import pyarrow.parquet as pq

    _, _, parts = world
    seen: list[set[str]] = []
    for i, path in enumerate(parts):
        ids = pq.read_table(path, columns=["account_id"]).column("account_id")
        assert set(account_partition(ids, PARTS).to_pylist()) == {i}
        seen.append(set(ids.to_pylist()))
    assert all(not (a & b) for j, a in enumerate(seen) for b in seen[j + 1 :])


def test_partitions_linked_together_equal_the_full_run(
    world: tuple[Path, Path, list[Path]], runs: tuple[pa.Table, CrossAccountContext, CrossAccountContext]
) -> None:
    # Linking needs every account at once: each partition is scanned with the merged context, then
    # `link-partitions` finds campaigns over all of them. Scores, verdicts and campaigns (members and
    # actor) must be the full run's.
    import csv
    import json

    from typer.testing import CliRunner

    from distillguard.cli import app
    from distillguard.pipeline import scan

    work, log, parts = world
    _, _, merged = runs
    sim = work / "sim"
    common = {"accounts": sim / "accounts.csv", "intel": sorted((sim / "intel").glob("*.json"))}
    scan([log], work / "scan-full", **common)
    for i, path in enumerate(parts):
        scan([path], work / f"scan-part-{i}", context=merged, **common)
    dbs = [str(work / f"scan-part-{i}" / "distillguard.duckdb") for i in range(PARTS)]
    out = work / "linked"
    for _ in range(2):  # a second run over the same folder gives the same outputs
        result = CliRunner().invoke(
            app, ["link-partitions", *dbs, "--out", str(out), "--intel", str(sim / "intel")]
        )
        assert result.exit_code == 0, result.output

    def accounts(d: Path) -> dict[str, tuple[str, str, str]]:
        rows = csv.DictReader((d / "accounts.csv").open())
        return {r["account_id"]: (r["score"], r["verdict"], bool(r["campaign_id"])) for r in rows}

    def campaigns(d: Path) -> set[tuple[frozenset[str], str | None]]:
        found = json.loads((d / "campaigns.json").read_text())
        return {(frozenset(c["accounts"]), c["attribution"]["actor"]) for c in found}

    assert accounts(out) == accounts(work / "scan-full")
    assert campaigns(out) == campaigns(work / "scan-full") and campaigns(out)
    assert (out / "report.html").exists()


def test_link_partitions_names_a_store_that_was_not_scanned(tmp_path: Path) -> None:
    from distillguard.pipeline import link_partitions

    Store(tmp_path / "ingested-only.duckdb").close()
    with pytest.raises(ValueError, match=r"ingested-only\.duckdb: not a scanned partition"):
        link_partitions([tmp_path / "ingested-only.duckdb"], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.duckdb"):
        link_partitions([tmp_path / "nowhere.duckdb"], tmp_path / "out")
