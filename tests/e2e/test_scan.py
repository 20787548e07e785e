"""`scan` end to end on simulated traffic: the output contract other tools read, and idempotency."""

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import stix2
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from distillguard.bench.run import read_truth
from distillguard.cli import app
from distillguard.pipeline import ScanResult, scan
from distillguard.schema import VERDICTS


def test_outputs_follow_the_contract(scanned: ScanResult) -> None:
    out = scanned.out_dir
    for name in (
        "accounts.csv",
        "campaigns.json",
        "report.html",
        "rejects.jsonl",
        "summary.json",
        "stix.json",
    ):
        assert (out / name).exists(), name
    with (out / "accounts.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["account_id", "score", "verdict", "campaign_id", "reasons"]
    assert all(0.0 <= float(r["score"]) <= 1.0 and r["verdict"] in VERDICTS for r in rows)
    # Every account above allow carries its reasons.
    assert all(r["reasons"] for r in rows if r["verdict"] != "allow")
    campaigns = json.loads((out / "campaigns.json").read_text())
    for c in campaigns:
        assert {"id", "accounts", "capability", "attribution"} <= c.keys()
        assert {"actor", "confidence", "evidence"} <= c["attribution"].keys()
        # The model mix that keeps an actor's campaigns apart is shown with the campaign.
        models = c["infrastructure"]["models"]
        assert models and 0 < sum(m["requests"] for m in models) <= c["volume"]
    members = {a for c in campaigns for a in c["accounts"]}
    assert {r["account_id"] for r in rows if r["campaign_id"]} <= members
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exchanges"] == scanned.exchanges > 0
    assert sum(summary["verdicts"].values()) == summary["accounts"] == len(rows)
    stix2.parse(json.loads((out / "stix.json").read_text()), allow_custom=True)


def test_scores_separate_distillers(scanned: ScanResult, sim_dir: Path) -> None:
    truth = read_truth(sim_dir / "truth.csv")
    with (scanned.out_dir / "accounts.csv").open() as fh:
        scores = {r["account_id"]: float(r["score"]) for r in csv.DictReader(fh)}
    ids = sorted(truth)
    y = np.array([truth[a].label for a in ids])
    assert roc_auc_score(y, [scores[a] for a in ids]) > 0.9


def test_rescan_is_idempotent_and_bad_lines_are_rejected(sim_dir: Path, tmp_path: Path) -> None:
    logs = sorted(sim_dir.glob("logs*.jsonl*"))
    with gzip.open(logs[0]) as fh:
        good = json.loads(fh.readline())
    bad = tmp_path / "bad.jsonl"
    lines = [{**good, "id": "late-1"}, {**good, "id": "bad-time", "startTime": "not a time"}]
    bad.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    first = scan([*logs, bad], tmp_path / "out", accounts=sim_dir / "accounts.csv")
    again = scan([*logs, bad], tmp_path / "out", accounts=sim_dir / "accounts.csv")
    assert first.added == first.exchanges > 1
    assert again.added == 0 and again.exchanges == first.exchanges
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert {(r["file"], r["line"]) for r in rejects} == {(str(bad), 2), (str(bad), 3)}


def test_cli_help_and_schema() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("scan", "ingest", "simulate", "bench", "train", "demo"):
        assert command in result.output
    assert "request_id" in runner.invoke(app, ["schema"]).output


def test_intel_folder_expands_to_its_bundles(tmp_path: Path) -> None:
    from distillguard.cli import intel_files

    folder = tmp_path / "intel"
    folder.mkdir()
    for name in ("b.json", "a.json", "notes.txt"):
        (folder / name).write_text("{}")
    single = tmp_path / "c.json"
    single.write_text("{}")
    assert intel_files([folder, single]) == [folder / "a.json", folder / "b.json", single]


def test_flagged_accounts_carry_their_top_traffic(scanned: ScanResult) -> None:
    """The evidence entry of every flagged account against counts taken from the stored rows in Python."""
    from collections import Counter

    from distillguard.store import ACCOUNT_SCORES, REQUEST_SIGNALS, Store

    store = Store(scanned.out_dir / "distillguard.duckdb")
    scores = store.table(ACCOUNT_SCORES).to_pyarrow().to_pylist()
    rows = store.events.left_join(store.table(REQUEST_SIGNALS), "request_id").to_pyarrow().to_pylist()
    store.close()
    templates: dict[str, Counter] = {}
    prompts: dict[tuple[str, str], list[str]] = {}
    agents: dict[str, Counter] = {}
    for r in rows:
        agents.setdefault(r["account_id"], Counter())[r["user_agent"]] += 1
        if r["template_id"] is not None:
            templates.setdefault(r["account_id"], Counter())[r["template_id"]] += 1
            prompts.setdefault((r["account_id"], r["template_id"]), []).append(r["user_text"])

    def top(counts: Counter) -> list[tuple[int, object]]:
        return sorted(((-n, key) for key, n in counts.items()), key=lambda x: (x[0], str(x[1])))[:3]

    flagged = [s for s in scores if s["verdict"] != "allow"]
    assert len(flagged) > 10
    for s in flagged:
        evidence = next(e["evidence"] for e in json.loads(s["reasons_json"]) if e["signal"] == "evidence")
        got = [(-t["n"], t["template_id"]) for t in evidence.get("templates", [])]
        assert got == top(templates.get(s["account_id"], Counter())), s["account_id"]
        for t in evidence.get("templates", []):
            assert t["example"] == min(p for p in prompts[(s["account_id"], t["template_id"])] if p)[:240]
        got_agents = [(-u["n"], u["user_agent"]) for u in evidence["user_agents"]]
        assert got_agents == top(agents[s["account_id"]])
        assert sum(p["n"] for p in evidence["ip_prefixes"]) <= sum(agents[s["account_id"]].values())
