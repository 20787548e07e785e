"""LiteLLM proxy guardrail: a decision before each call, reasoning stripped after it, state fed by its logs.

Register in the proxy's config.yaml (configure the detector with DISTILLGUARD_* variables, see
`decide.detector_from_env`; DISTILLGUARD_TRUSTED_PROXIES lists the proxies in front of LiteLLM):

    guardrails:
      - guardrail_name: distillguard
        litellm_params:
          guardrail: distillguard.online.litellm_guardrail.DistillGuardrail
          mode: [pre_call, post_call]
          default_on: true

The pre-call hook only reads the account's cached risk (microseconds); the request itself is
folded into state by the success-logging hook, from the same StandardLoggingPayload that the
batch LiteLLM reader reads, once usage and status are known.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from fastapi import HTTPException
from litellm.integrations.custom_guardrail import CustomGuardrail

from distillguard.io.base import ReadOptions, RecordError, parse_networks
from distillguard.io.litellm import payload_to_event
from distillguard.online.decide import Decision, detector_from_env

_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(</\1>|$)", re.S | re.I)


def strip_reasoning(text: str) -> str:
    """The answer without its visible reasoning blocks (<think>...</think> and the like)."""
    return _THINK.sub("", text).strip()


def _account(auth: Any) -> str | None:
    # Same precedence as io.litellm.payload_to_event, so pre-call and logged events name one account.
    for attr in ("user_id", "team_id", "org_id", "api_key"):
        value = getattr(auth, attr, None)
        if value:
            return str(value)
    return None


class DistillGuardrail(CustomGuardrail):
    """Blocks, throttles or asks for verification per the policy; degrades answers on `degrade`."""

    def __init__(self, **kwargs: Any) -> None:
        self.detector = detector_from_env()
        trusted = os.environ.get("DISTILLGUARD_TRUSTED_PROXIES", "").split(",")
        self.read_options = ReadOptions(trusted_proxies=parse_networks(trusted))
        super().__init__(**kwargs)

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any
    ) -> dict | None:
        account = _account(user_api_key_dict)
        if account is None:
            return data
        decision = self.detector.decide(
            {"account_id": account, "request_id": data.get("litellm_call_id")}, update=False
        )
        data.setdefault("metadata", {})["distillguard"] = decision.to_dict()
        _enforce(decision)
        return data

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> Any:
        decision = (data.get("metadata") or {}).get("distillguard") or {}
        if "degrade" in decision.get("actions", ()):
            for choice in getattr(response, "choices", None) or ():
                message = getattr(choice, "message", None)
                if message is None:
                    continue
                if isinstance(message.content, str):
                    message.content = strip_reasoning(message.content)
                for attr in ("reasoning_content", "thinking_blocks"):
                    if getattr(message, attr, None) is not None:
                        setattr(message, attr, None)
        return response

    async def async_log_success_event(
        self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        payload = kwargs.get("standard_logging_object")
        if not payload:
            return
        try:
            event = payload_to_event(payload, self.read_options)
        except RecordError:
            return
        if event.get("account_id") and event.get("start_time"):
            self.detector.observe(event)


def _enforce(decision: Decision) -> None:
    detail = {"error": "distillguard", "verdict": decision.verdict, "request_id": decision.request_id}
    if "block" in decision.actions:
        raise HTTPException(status_code=403, detail={**detail, "message": "request blocked by policy"})
    if "step_up_verification" in decision.actions:
        raise HTTPException(status_code=403, detail={**detail, "message": "identity verification required"})
    if "throttle" in decision.actions:
        wait = max(1, math.ceil(decision.retry_after_s))
        raise HTTPException(
            status_code=429,
            detail={**detail, "message": "rate limited by policy", "retry_after_s": decision.retry_after_s},
            headers={"Retry-After": str(wait)},
        )
