"""The simulator: same seed same bytes, readable logs, and each population inside its stated ranges."""

from __future__ import annotations

import csv
import ipaddress
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import stix2
from iporigin import classify

from distillguard.io import ReadOptions, RejectSink, read_events
from distillguard.sim import SCENARIOS, simulate
from distillguard.sim.populations import NEW_MODEL, NEW_MODEL_RELEASE_DAY
from distillguard.sim.templates import COT_EXTRACTION, EVAL_CODE, EVAL_MATH

SCALE = 0.2


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("mixed")
    return simulate("mixed", seed=7, scale=SCALE, out=out), out


@pytest.fixture(scope="module")
def events(run: tuple[dict, Path]) -> pa.Table:
    result, out = run
    rejects = RejectSink()
    options = ReadOptions(keep_responses=True)  # the responses' shape is checked below
    table = pa.Table.from_batches(list(read_events(out / "logs.jsonl.gz", rejects, options)))
    assert len(rejects) == 0, rejects.rejects[:3]
    assert table.num_rows == result["exchanges"]
    return table


@pytest.fixture(scope="module")
def truth(run: tuple[dict, Path]) -> dict[str, dict[str, str]]:
    with (run[1] / "truth.csv").open() as fh:
        return {r["account_id"]: r for r in csv.DictReader(fh)}


def _population(events: pa.Table, truth: dict[str, dict[str, str]], name: str) -> pa.Table:
    ids = pa.array([a for a, r in truth.items() if r["population"] == name])
    sub = events.filter(pc.is_in(events["account_id"], value_set=ids))
    assert sub.num_rows > 0, name
    return sub


def _per_account(t: pa.Table) -> list[int]:
    return [int(c) for c in pc.value_counts(t["account_id"]).field("counts").to_pylist()]


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    simulate("hydra", seed=3, scale=0.05, out=a)
    simulate("hydra", seed=3, scale=0.05, out=b)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    simulate("hydra", seed=4, scale=0.05, out=tmp_path / "c")
    assert (tmp_path / "c" / "logs.jsonl.gz").read_bytes() != (a / "logs.jsonl.gz").read_bytes()


def test_size_and_order(run: tuple[dict, Path], events: pa.Table) -> None:
    assert 0.8 * 50_000 * SCALE < events.num_rows < 1.3 * 50_000 * SCALE
    starts = events["start_time"]
    assert pc.all(pc.greater_equal(starts.slice(1), starts.slice(0, len(starts) - 1))).as_py()
    assert run[0]["campaigns"] and len(run[0]["campaigns"]) == 8


def test_truth_covers_every_account(run: tuple[dict, Path], events: pa.Table, truth: dict) -> None:
    with (run[1] / "accounts.csv").open() as fh:
        accounts = [r["account_id"] for r in csv.DictReader(fh)]
    assert set(accounts) == set(truth) and len(accounts) == len(truth)
    assert set(pc.unique(events["account_id"]).to_pylist()) <= set(truth)
    for row in truth.values():
        assert row["label"] in ("benign", "distiller")
        assert bool(row["campaign_id"]) == (row["label"] == "distiller")


def test_no_single_artifact_gives_attackers_away(events: pa.Table, truth: dict) -> None:
    bad = {a for a, r in truth.items() if r["label"] == "distiller"}
    is_bad = pc.is_in(events["account_id"], value_set=pa.array(sorted(bad)))
    bad_agents = set(pc.unique(events.filter(is_bad)["user_agent"]).to_pylist())
    good_agents = set(pc.unique(events.filter(pc.invert(is_bad))["user_agent"]).to_pylist())
    assert len(bad_agents & good_agents) / len(bad_agents) > 0.5


def test_casual_users_follow_their_day(events: pa.Table, truth: dict) -> None:
    t = _population(events, truth, "casual")
    assert 1.5 < t.num_rows / len(set(t["account_id"].to_pylist())) < 20
    assert len(pc.unique(t["user_agent"])) > 30


def test_enterprise_apps_one_key_many_end_users(events: pa.Table, truth: dict) -> None:
    t = _population(events, truth, "enterprise_app")
    for acct in pc.unique(t["account_id"]).to_pylist():
        sub = t.filter(pc.equal(t["account_id"], acct))
        assert len(pc.unique(sub["system_prompt"])) == 1
        assert len(pc.unique(sub["end_user_id"])) > 50


def test_eval_runners_sweep_with_one_template(events: pa.Table, truth: dict) -> None:
    t = _population(events, truth, "eval_runner")
    prefixes = (EVAL_MATH.split("{")[0], EVAL_CODE.split("{")[0])
    assert all(u.startswith(prefixes) for u in t["user_text"].to_pylist())
    assert pc.all(pc.equal(t["temperature"], 0.0)).as_py()
    assert min(_per_account(t)) > 100


def test_university_nat_many_accounts_few_ips(events: pa.Table, truth: dict) -> None:
    t = _population(events, truth, "university_nat")
    assert len(pc.unique(t["account_id"])) >= 5
    assert len(pc.unique(t["client_ip"])) <= 3


def test_router_headers_and_end_users(events: pa.Table, truth: dict) -> None:
    t = _population(events, truth, "router")
    assert pc.all(pc.is_valid(t["referer"])).as_py() and pc.all(pc.is_valid(t["app_title"])).as_py()
    assert len(pc.unique(t["end_user_id"])) > 100


def test_hydra_bursts_shared_payments_mixed_ips(
    run: tuple[dict, Path], events: pa.Table, truth: dict
) -> None:
    t = _population(events, truth, "hydra")
    with (run[1] / "accounts.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if truth[r["account_id"]]["population"] == "hydra"]
    assert len(rows) >= 30
    assert len({r["created_at"][:13] for r in rows}) <= 8  # created in a few bursts (hour buckets)
    assert len(rows) / len({r["payment_fingerprint"] for r in rows}) >= 5
    ips = pc.unique(t["client_ip"]).to_pylist()
    dc = sum(classify(ip).is_datacenter for ip in t["client_ip"].to_pylist()) / t.num_rows
    assert 0.3 < dc < 0.7 and len(ips) > 20
    assert 10 <= sorted(_per_account(t))[len(rows) // 2] <= 40
    failed = pc.sum(pc.equal(t["error_code"], "429")).as_py() / t.num_rows
    assert 0.02 < failed < 0.12


def test_template_reuse_in_campaigns(events: pa.Table, truth: dict) -> None:
    t = _population(events, truth, "cot_extraction")
    prefixes = tuple(tpl.split("{")[0] for tpl in COT_EXTRACTION)  # a handful of wrappers...
    assert all(u.startswith(prefixes) for u in t["user_text"].to_pylist())
    assert len(pc.unique(t["user_text"])) > 0.5 * min(t.num_rows, 270)  # ...over many problems
    assert pc.approximate_median(t["completion_tokens"]).as_py() > 500


def test_rubric_grades_are_short_json(events: pa.Table, truth: dict) -> None:
    t = _population(events, truth, "rubric_farm").filter(pc.equal(pc.field("status"), "success"))
    assert pc.approximate_median(t["completion_tokens"]).as_py() < 80
    assert all(isinstance(json.loads(r)["score"], int) for r in t["response_text"].to_pylist()[:50])


def test_agentic_coding_offers_tools(events: pa.Table, truth: dict) -> None:
    t = _population(events, truth, "agentic_coding")
    assert pc.min(t["tools_count"]).as_py() >= 3


def test_low_and_slow_is_few_requests_with_cover(events: pa.Table, truth: dict) -> None:
    t = _population(events, truth, "low_and_slow")
    assert max(_per_account(t)) <= 20
    cover = sum("answer" not in u.lower() for u in t["user_text"].to_pylist()) / t.num_rows
    assert 0.3 < cover < 0.8


def test_reseller_mixes_genuine_and_distilling_end_users(
    run: tuple[dict, Path], events: pa.Table, truth: dict
) -> None:
    t = _population(events, truth, "reseller")
    assert len(pc.unique(t["account_id"])) == 1
    with (run[1] / "end_user_truth.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    labels = [r["label"] for r in rows]
    assert 0 < labels.count("distiller") < labels.count("benign")


def test_model_pivot_moves_half_within_a_day(events: pa.Table, truth: dict) -> None:
    t = _population(events, truth, "model_pivot")
    hours = pc.divide(
        pc.subtract(pc.cast(t["start_time"], pa.int64()), pc.min(pc.cast(t["start_time"], pa.int64()))),
        3_600_000_000.0,
    )
    start_day = t["start_time"][0].as_py().replace(hour=0, minute=0, second=0, microsecond=0)
    release_h = NEW_MODEL_RELEASE_DAY * 24 - (t["start_time"][0].as_py() - start_day).total_seconds() / 3600
    new = pc.equal(t["model_requested"], NEW_MODEL)
    assert not pc.any(pc.and_(new, pc.less(hours, release_h))).as_py()
    late = t.filter(pc.greater(hours, release_h + 24))
    share = pc.sum(pc.equal(late["model_requested"], NEW_MODEL)).as_py() / late.num_rows
    assert 0.35 < share < 0.65


def test_intel_bundles(run: tuple[dict, Path], events: pa.Table, truth: dict) -> None:
    out = run[1] / "intel"
    names = sorted(p.stem for p in out.glob("*.json"))
    actors = {r["actor"] for r in truth.values() if r["actor"]}
    assert len(names) == len(actors) - 1 and set(names) < actors  # one actor without intel
    nat = _population(events, truth, "university_nat")["client_ip"][0].as_py()
    nat_cidr = str(ipaddress.ip_network(f"{nat}/24", strict=False))
    decoys = 0
    for path in out.glob("*.json"):
        bundle = stix2.parse(path.read_text(), allow_custom=True)
        kinds = {o.type for o in bundle.objects}
        assert {"intrusion-set", "indicator", "relationship"} <= kinds
        patterns = [o.pattern for o in bundle.objects if o.type == "indicator"]
        decoys += sum(nat_cidr in p for p in patterns)
        assert any("x-distillguard-payment-fingerprint" in p for p in patterns)
    assert decoys == 1


def test_metadata_only_and_scenarios(tmp_path: Path) -> None:
    assert "mixed" in SCENARIOS and "benign" in SCENARIOS
    simulate("benign", seed=1, scale=0.05, out=tmp_path, metadata_only=True)
    rejects = RejectSink()
    t = pa.Table.from_batches(list(read_events(tmp_path / "logs.jsonl.gz", rejects)))
    assert len(rejects) == 0 and not pc.any(t["content_present"]).as_py()
    with (tmp_path / "truth.csv").open() as fh:
        assert {r["label"] for r in csv.DictReader(fh)} == {"benign"}
    with pytest.raises(ValueError):
        simulate("nope", out=tmp_path)
