"""decide(): verdicts and actions from policy, hot reload, monitor-only, allowlist, cached risk."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from online_helpers import Replay

from distillguard.features import FEATURES
from distillguard.online.compiled import CompiledRiskModel
from distillguard.online.decide import OnlineDetector
from distillguard.online.state import _GAP_MIN, _GAP_RATIO, DistinctCounter, _gap_bin, histogram_median
from distillguard.score import RiskModel


def _policy(path: Path, block: float, monitor: bool = False, allow: tuple[str, ...] = ()) -> Path:
    path.write_text(
        f"thresholds: {{block: {block}, throttle: 0.3, review: 0.2}}\n"
        f"monitor_only: {str(monitor).lower()}\nallowlist: {list(allow)}\n"
        "actions: {block: [block], throttle: [throttle, degrade], review: [], allow: []}\n"
    )
    return path


def test_policy_hot_reload_monitor_and_allowlist(
    replay: Replay, replayed: OnlineDetector, tmp_path: Path
) -> None:
    det = replayed
    acct = max(replay.features.column("account_id").to_pylist(), key=det.score)
    event = next(e for e in reversed(replay.events) if e["account_id"] == acct)
    path = _policy(tmp_path / "policy.yaml", block=0.0)
    live = OnlineDetector(replay.model, policy=path, state=det.state, signals=replay.signal_lookup)
    live._policy.interval_s = 0.0  # type: ignore[union-attr]
    d = live.decide(event, update=False)
    assert (d.verdict, d.actions, d.blocked) == ("block", ["block"], True)
    assert d.reasons and d.risk > 0.5

    def rewrite(**kw: object) -> None:
        _policy(path, **kw)  # type: ignore[arg-type]
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))

    rewrite(block=1.01)
    # Throttled: the default rate admits a burst of 3 at one instant, then answers 429.
    actions = [live.decide(event, update=False).actions for _ in range(4)]
    assert actions == [["degrade"]] * 3 + [["throttle", "degrade"]]
    rewrite(block=0.0, monitor=True)
    d = live.decide(event, update=False)
    assert (d.verdict, d.actions, d.raw_verdict) == ("allow", [], "block")
    rewrite(block=0.0, allow=(acct,))
    assert live.decide(event, update=False).verdict == "allow"
    path.write_text("thresholds: {nonsense: 1}\n")  # a bad edit keeps the last good policy
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000_000))
    assert live.decide(event, update=False).verdict == "allow"


def test_unknown_account_is_allowed(replay: Replay) -> None:
    det = OnlineDetector(replay.model, signals=replay.signal_lookup)
    d = det.decide({**replay.events[0], "account_id": "never-seen"}, update=False)
    assert (d.verdict, d.risk, d.actions) == ("allow", 0.0, [])


def test_compiled_model_equals_risk_model(replay: Replay) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, len(FEATURES))) * 10
    X[rng.random(X.shape) < 0.3] = np.nan
    for model in (replay.model, RiskModel.load()):  # a small test model; the shipped one, 22 levels deep
        compiled = CompiledRiskModel(model)
        got = np.array([compiled.predict_one(x) for x in X])
        np.testing.assert_allclose(got, model.predict_proba(X), atol=1e-12)


@pytest.mark.parametrize("n", [1, 100, 128, 5000, 50_000])
def test_distinct_counter(n: int) -> None:
    c = DistinctCounter()
    for i in range(n):
        c.add(f"v{i}")
        c.add(f"v{i}")
    assert abs(c.count() - n) <= (0 if n <= 128 else 0.06 * n)
    assert DistinctCounter.from_obj(c.to_obj()).count() == c.count()


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 500])
def test_histogram_median_places_the_middle_gaps_in_their_bins(n: int) -> None:
    # The definition: sort every gap, take the middle one or two, place each geometrically inside
    # its bin by its rank among the gaps of that bin.
    rng = np.random.default_rng(n)
    gaps = sorted(rng.choice([0.0, 0.0004, 1.0, 3.0, 3.01, 60.0, 4000.0], size=n).tolist())
    bins: dict[int, int] = {}
    for g in gaps:
        bins[_gap_bin(g)] = bins.get(_gap_bin(g), 0) + 1

    def placed(rank: int) -> float:
        b = _gap_bin(gaps[rank])
        first = min(i for i, g in enumerate(gaps) if _gap_bin(g) == b)
        return 0.0 if b == 0 else _GAP_MIN * _GAP_RATIO ** (b - 1 + (rank - first + 0.5) / bins[b])

    assert histogram_median(bins) == (placed((n - 1) // 2) + placed(n // 2)) / 2
    assert np.isnan(histogram_median({}))


def test_detector_from_env_is_warm_before_its_first_request() -> None:
    # The gateway's detector compiles its loops and loads its models at start-up, touching no
    # state. In a fresh process, since this one has compiled them already for other tests.
    import subprocess
    import sys

    code = (
        "from distillguard.online.compiled import _probability\n"
        "from distillguard.online.features import _sharing\n"
        "from distillguard.signals.template import _min_shingle\n"
        "from distillguard.signals.word_table import _project_texts\n"
        "loops = (_probability, _sharing, _project_texts, _min_shingle)\n"
        "compiled = lambda: [bool(f.signatures) for f in loops]\n"
        "before = compiled()\n"
        "from distillguard.online.decide import detector_from_env\n"
        "det = detector_from_env({})\n"
        "pairs = [f'{int(a)}{int(b)}' for a, b in zip(before, compiled())]\n"
        "print(*pairs, det.state.get('') is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # Per loop: not compiled before (0), compiled after (1); then whether the state is untouched.
    assert out.split() == ["01", "01", "01", "01", "True"]
