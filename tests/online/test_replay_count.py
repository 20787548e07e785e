"""The time-to-first-flag replay counts a shared account's campaign by its campaign's end users."""

from __future__ import annotations

from collections import Counter

from online_helpers import Replay

from distillguard.bench.replay import replay_campaigns


def test_shared_account_counts_only_its_campaign_end_users(replay: Replay) -> None:
    users = Counter(e["account_id"] for e in replay.events if e["end_user_id"])
    shared = users.most_common(1)[0][0]
    end_users = sorted(
        {e["end_user_id"] for e in replay.events if e["account_id"] == shared and e["end_user_id"]}
    )
    assert len(end_users) >= 4
    harvesting = set(end_users[::2])
    mapping = {(shared, u): ("c" if u in harvesting else "") for u in end_users}
    own = [e for e in replay.events if e["account_id"] == shared]

    def run(**kw: object) -> dict:
        return replay_campaigns(
            replay.events,
            {shared: "c"},
            replay.model,
            replay.accounts,
            replay.signal_lookup,
            **kw,  # type: ignore[arg-type]
        )["campaigns"]["c"]

    whole = run()
    split = run(end_users=mapping)
    assert whole["exchanges"] == len(own)
    assert split["exchanges"] == sum(e["end_user_id"] in harvesting for e in own) < len(own)
    if whole["seen_before_flag"] is not None:  # the account's own flag is the campaign's flag
        assert (
            split["seen_before_flag"] is not None and split["seen_before_flag"] <= whole["seen_before_flag"]
        )
