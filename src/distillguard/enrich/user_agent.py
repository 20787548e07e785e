"""User-agent family: which client library or tool sent the request.

SDKs announce themselves (`OpenAI/Python 1.54.0`, `Anthropic/Python`, `OpenAI/JS`), so a few ordered
substring rules cover the families that matter for telling scripted harvesting from people in a
browser. Wrappers come first: LiteLLM and LangChain send requests through the vendor SDKs and keep
their own token in the agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from distillguard.signals.base import per_distinct

UA_FAMILIES: tuple[str, ...] = (
    "litellm",
    "langchain",
    "openai-python",
    "anthropic-python",
    "node-sdk",
    "curl",
    "python-requests",
    "httpx",
    "browser",
    "other",
)

# (family, lower-case substrings); first match wins.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("litellm", ("litellm",)),
    ("langchain", ("langchain",)),
    ("openai-python", ("openai/python", "openai-python")),
    ("anthropic-python", ("anthropic/python", "anthropic-python")),
    (
        "node-sdk",
        ("openai/js", "anthropic/js", "openai-node", "node-fetch", "undici"),
    ),
    ("curl", ("curl/",)),
    ("python-requests", ("python-requests/",)),
    ("httpx", ("python-httpx/", "httpx/")),
    ("browser", ("mozilla/5.0",)),
)


def ua_family(user_agent: str | None) -> str | None:
    """Family of one user agent; None when there is none."""
    if user_agent is None:
        return None
    low = user_agent.lower()
    for family, needles in _RULES:
        if any(n in low for n in needles):
            return family
    return "other"


class UserAgentEnricher:
    """Signal: `user_agent` -> ua_family, parsed once per distinct agent in the batch."""

    name = "user_agent"
    columns = pa.schema([("ua_family", pa.string())])

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        column = per_distinct(batch.column("user_agent"), lambda xs: [ua_family(x) for x in xs], pa.string())
        return pa.RecordBatch.from_arrays([column], schema=self.columns)

    def row(self, event: Mapping[str, Any]) -> dict[str, Any]:
        return {"ua_family": ua_family(event.get("user_agent"))}
