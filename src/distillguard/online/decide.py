"""One decision per request: `OnlineDetector.decide(event) -> Decision`.

The detector folds each event into streaming per-account state (see `state` and `features`),
derives the batch feature vector from it and scores it with the same `RiskModel` (compiled: tens
of microseconds a row). The account's risk and reasons are cached in its state and recomputed when
the state has grown materially: every request while the account is young, then once its request
count has grown by a quarter or by `rescore_every`, whichever comes first.

In a gateway the prompt is known before the call and the usage after it, so the request path
calls `decide(event, update=False)` (a cached lookup) and the logging hook calls `observe(event)`;
a replay or a webhook with complete events calls `decide(event)`, which does both.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from distillguard.online import features as online_features
from distillguard.online.compiled import CompiledRiskModel
from distillguard.online.state import AccountState, MemoryState, State, StateUnavailable
from distillguard.policy import Policy
from distillguard.schema import VERDICTS
from distillguard.score import RiskModel, rounded_features
from distillguard.signals import WARM_UP_EVENT, request_signal_row

ACTIONS: tuple[str, ...] = ("throttle", "step_up_verification", "block", "degrade")
_NO_ROW = online_features.static_features(None)
_DAY = 86400.0


@dataclass(frozen=True)
class Decision:
    """What the gateway does with one request, and why."""

    verdict: str
    risk: float
    reasons: list[dict[str, Any]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    account_id: str = ""
    request_id: str = ""
    # The verdict the risk earns before the allowlist and monitor-only mode (for the logs).
    raw_verdict: str = "allow"
    state_error: bool = False
    # Under a throttle verdict: 0 when this request fits the account's rate (and "throttle" is not
    # among the actions), else the seconds until it would (the gateway's Retry-After).
    retry_after_s: float = 0.0

    @property
    def blocked(self) -> bool:
        return "block" in self.actions

    def to_dict(self) -> dict[str, Any]:
        # Shallow: the reasons are already plain dicts (asdict's deep copy was a tenth of a request).
        return {f: getattr(self, f) for f in _DECISION_FIELDS}


_DECISION_FIELDS = tuple(Decision.__dataclass_fields__)


class PolicyFile:
    """A policy re-read when its file's mtime changes, checked at most every `interval_s`."""

    def __init__(self, path: Path, interval_s: float = 1.0) -> None:
        self.path = path
        self.interval_s = interval_s
        self._mtime = path.stat().st_mtime_ns
        self._policy = Policy.load(path)
        self._checked = time.monotonic()

    def current(self) -> Policy:
        now = time.monotonic()
        if now - self._checked >= self.interval_s:
            self._checked = now
            try:
                mtime = os.stat(self.path).st_mtime_ns
                if mtime != self._mtime:
                    self._policy, self._mtime = Policy.load(self.path), mtime
            except (OSError, ValueError):
                pass  # a half-written or removed file keeps the last good policy
        return self._policy


class OnlineDetector:
    """Streaming detector: per-request signals, per-account state, cached calibrated risk, policy.

    Parameters
    ----------
    model: the batch `RiskModel` (same FEATURES, same calibration).
    policy: a `Policy`, or a path to a policy YAML re-read when it changes.
    state: where account state lives (`MemoryState` by default, `RedisState` to share it).
    accounts: account-table rows by account id (ACCOUNT_SCHEMA fields) for the static features.
    rescore_every: most requests between two scorings of an account.
    on_state_error: the verdict when the state store is down: "allow" fails open, "block" closed.
    signals: one event's request-signal row (the batch signals' row path by default).
    """

    def __init__(
        self,
        model: RiskModel,
        policy: Policy | Path | None = None,
        state: State | None = None,
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        rescore_every: int = 16,
        on_state_error: str = "allow",
        signals: Callable[[Mapping[str, Any]], Mapping[str, Any]] = request_signal_row,
    ) -> None:
        if on_state_error not in VERDICTS:
            raise ValueError(f"on_state_error: {on_state_error!r} is not one of {VERDICTS}")
        self.model = model
        try:
            self._predict_one: Callable[[np.ndarray], float] = CompiledRiskModel(model).predict_one
        except ValueError:
            self._predict_one = lambda x: float(model.predict_proba(x[None, :])[0])
        self._policy: Policy | PolicyFile = (
            PolicyFile(policy) if isinstance(policy, Path) else policy or Policy.load()
        )
        self.state: State = state if state is not None else MemoryState()
        self.accounts = accounts or {}
        self._static: dict[str, dict[str, float]] = {}
        self.rescore_every = rescore_every
        self.on_state_error = on_state_error
        self.signals = signals

    @property
    def policy(self) -> Policy:
        p = self._policy
        return p.current() if isinstance(p, PolicyFile) else p

    def decide(self, event: Mapping[str, Any], update: bool = True) -> Decision:
        """The decision for one canonical event; with `update`, the event is folded into state first."""
        account = str(event["account_id"])
        try:
            st = self._observe(event) if update else self.state.get(account)
        except StateUnavailable:
            return self._decision(event, self.on_state_error, 0.0, [], state_error=True)
        if st is None or st.risk is None:
            return self._decision(event, "allow", 0.0, [])
        policy = self.policy
        decision = self._decision(event, policy.verdict(account, st.risk), st.risk, st.reasons, policy=policy)
        return self._meter(decision, event, policy) if "throttle" in decision.actions else decision

    def observe(self, event: Mapping[str, Any]) -> None:
        """Fold a completed exchange into state (the logging hook); never raises on a store outage."""
        with contextlib.suppress(StateUnavailable):
            self._observe(event)

    def request_signals(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The batch per-request signals of one event, as a dict."""
        return dict(self.signals(event))

    def feature_vector(self, account_id: str) -> np.ndarray:
        """The account's current features in FEATURES order (NaNs for an unseen account)."""
        st = self.state.get(account_id) or AccountState()
        return self._vector(account_id, st)

    def score(self, account_id: str) -> float:
        """Fresh risk of an account from its current state (no cache)."""
        return self._predict_one(self.feature_vector(account_id))

    def warm_up(self) -> None:
        """Load the language model and compile the signals' and the model's loops (numba, a second
        or two on a fresh install, then read from its cache) before the first request, so that
        request does not pay for it. Touches no account state."""
        self.request_signals(WARM_UP_EVENT)
        none = np.zeros(0, dtype=np.int64)
        self._predict_one(online_features.vector(AccountState(), none, none, None))

    # --- internals ---------------------------------------------------------------------------

    def _observe(self, event: Mapping[str, Any]) -> AccountState:
        account = str(event["account_id"])
        sig = self.request_signals(event)
        ts = online_features.epoch(event["start_time"])
        t0 = self.state.first_seen("*", ts)
        model_first = self.state.first_seen(f"model:{event.get('model_requested')}", ts)
        # As the batch feature: a model first seen a day or more into the log, used within a day of it.
        early = (
            event.get("model_requested") is not None and model_first > t0 + _DAY and ts - model_first < _DAY
        )
        for kind, key in (("tpl", sig.get("template_id")), ("pfx", sig.get("ip_prefix"))):
            if key is not None:
                self.state.link(kind, key, account)

        def fold(st: AccountState) -> None:
            online_features.observe(st, event, sig, early)
            since = st.n - st.scored_n
            if st.risk is None or since >= min(self.rescore_every, max(1, st.scored_n // 4)):
                self._rescore(account, st)

        return self.state.update(account, fold)

    def _vector(self, account_id: str, st: AccountState) -> np.ndarray:
        tpl = self.state.accounts_on("tpl", account_id, st.templates)
        pfx = self.state.accounts_on("pfx", account_id, st.prefixes)
        account = self.accounts.get(account_id)
        # The account table is fixed, so its features are computed once per account row (the cache
        # is no larger than the table; accounts without a row share the all-NaN features).
        static = _NO_ROW if account is None else self._static.get(account_id)
        if static is None:
            static = self._static[account_id] = online_features.static_features(account)
        return rounded_features(online_features.vector(st, tpl, pfx, account, static))

    def _rescore(self, account_id: str, st: AccountState) -> None:
        x = self._vector(account_id, st)
        st.risk = self._predict_one(x)
        st.scored_n = st.n
        raw = self.policy.raw_verdict(st.risk)
        st.reasons = [r.to_dict() for r in self.model.reasons(x)] if raw != "allow" else []

    def _meter(self, decision: Decision, event: Mapping[str, Any], policy: Policy) -> Decision:
        """Admit a throttled account's request while its token bucket allows (the rate is kept, not cut)."""
        # The request's own time keeps replays exact; a bare lookup without one uses the clock.
        now = online_features.epoch(event["start_time"]) if event.get("start_time") else time.time()
        per_s = policy.throttle_per_minute / 60.0
        state_error = False
        try:
            wait = self.state.take_token(decision.account_id, per_s, policy.throttle_burst, now)
        except StateUnavailable:  # fail open or closed, as for the rest of the state
            state_error = True
            wait = 0.0 if self.on_state_error == "allow" else 1.0 / per_s
        actions = decision.actions if wait > 0 else [a for a in decision.actions if a != "throttle"]
        return replace(decision, actions=actions, retry_after_s=round(wait, 3), state_error=state_error)

    def _decision(
        self,
        event: Mapping[str, Any],
        verdict: str,
        risk: float,
        reasons: list[dict[str, Any]],
        state_error: bool = False,
        policy: Policy | None = None,
    ) -> Decision:
        policy = policy or self.policy
        raw = verdict if state_error else policy.raw_verdict(risk)
        return Decision(
            verdict=verdict,
            risk=risk,
            reasons=reasons,
            actions=[a for a in policy.actions.get(verdict, []) if a in ACTIONS],
            account_id=str(event.get("account_id", "")),
            request_id=str(event.get("request_id") or ""),
            raw_verdict=raw,
            state_error=state_error,
        )


def detector_from_env(env: Mapping[str, str] | None = None) -> OnlineDetector:
    """A detector configured by environment (how gateway adapters are configured).

    DISTILLGUARD_MODEL (risk model path), DISTILLGUARD_POLICY (policy YAML, hot-reloaded),
    DISTILLGUARD_REDIS_URL (shared state; in-process without it), DISTILLGUARD_ON_STATE_ERROR
    (verdict while Redis is down: allow = fail open, block = fail closed), DISTILLGUARD_ACCOUNTS
    (accounts CSV/Parquet for the account-table features).
    """
    from distillguard.io.accounts import read_accounts
    from distillguard.io.base import RejectSink
    from distillguard.policy import DEFAULT_POLICY
    from distillguard.score import DEFAULT_MODEL

    env = os.environ if env is None else env
    state: State | None = None
    if env.get("DISTILLGUARD_REDIS_URL"):
        from distillguard.online.redis_state import RedisState

        state = RedisState(env["DISTILLGUARD_REDIS_URL"])
    accounts = None
    if env.get("DISTILLGUARD_ACCOUNTS"):
        table = read_accounts(Path(env["DISTILLGUARD_ACCOUNTS"]), RejectSink())
        accounts = {r["account_id"]: r for r in table.to_pylist()}
    detector = OnlineDetector(
        RiskModel.load(Path(env.get("DISTILLGUARD_MODEL", DEFAULT_MODEL))),
        policy=Path(env.get("DISTILLGUARD_POLICY", DEFAULT_POLICY)),
        state=state,
        accounts=accounts,
        on_state_error=env.get("DISTILLGUARD_ON_STATE_ERROR", "allow"),
    )
    detector.warm_up()
    return detector
