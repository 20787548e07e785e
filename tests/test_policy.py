from pathlib import Path

import pytest

from distillguard.policy import Policy


def test_default_policy_orders_verdicts() -> None:
    p = Policy.load()
    assert p.verdict("a", 0.0) == "allow"
    assert p.verdict("a", 0.999) == "block"
    scores = [0.0, 0.55, 0.85, 0.92, 0.99]
    order = ["allow", "review", "throttle", "verify", "block"]
    assert [p.raw_verdict(s) for s in scores] == order


def test_allowlist_and_monitor_only(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("thresholds: {block: 0.5}\nallowlist: [partner-1]\n")
    p = Policy.load(f)
    assert p.verdict("partner-1", 0.9) == "allow"
    assert p.verdict("other", 0.9) == "block"
    f.write_text("thresholds: {block: 0.5}\nmonitor_only: true\n")
    assert Policy.load(f).verdict("other", 0.9) == "allow"


def test_unknown_verdict_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("thresholds: {ban: 0.5}\n")
    with pytest.raises(ValueError, match="unknown verdicts"):
        Policy.load(f)
