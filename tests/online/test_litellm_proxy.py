"""The guardrail inside a real LiteLLM proxy process on loopback, with mock model responses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from online_helpers import Replay, free_port, wait_port

from distillguard.online.litellm_guardrail import strip_reasoning

KEY = "sk-test-master-key"
ANSWER = "<think>secret chain of thought</think>The answer is 4."


def _policy(path: Path, verdict: str, actions: str) -> None:
    path.write_text(f"thresholds: {{{verdict}: 0.0}}\nactions: {{{verdict}: [{actions}]}}\n")
    later = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(later, later))


@pytest.fixture(scope="module")
def proxy(replay: Replay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if shutil.which("litellm", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("litellm[proxy] is not installed")
    d = tmp_path_factory.mktemp("proxy")
    replay.model.save(d / "model.skops")
    _policy(d / "policy.yaml", "review", "degrade")
    (d / "config.yaml").write_text(
        "model_list:\n"
        "  - model_name: mock-model\n"
        "    litellm_params:\n"
        "      model: openai/mock-model\n"
        "      api_key: unused\n"
        f"      mock_response: {ANSWER!r}\n"
        "guardrails:\n"
        "  - guardrail_name: distillguard\n"
        "    litellm_params:\n"
        "      guardrail: distillguard.online.litellm_guardrail.DistillGuardrail\n"
        "      mode: [pre_call, post_call]\n"
        "      default_on: true\n"
        f"general_settings:\n  master_key: {KEY}\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "DISTILLGUARD_MODEL": str(d / "model.skops"),
        "DISTILLGUARD_POLICY": str(d / "policy.yaml"),
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
    }
    exe = str(Path(sys.executable).parent / "litellm")
    log = (d / "proxy.log").open("wb")
    proc = subprocess.Popen(
        [exe, "--config", str(d / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=d,
    )
    try:
        wait_port(port, proc, 240)  # the proxy imports a lot: slow on a busy 2-core machine
        yield f"http://127.0.0.1:{port}", d
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _chat(base: str) -> httpx.Response:
    body = {"model": "mock-model", "messages": [{"role": "user", "content": "Solve 2+2 step by step."}]}
    return httpx.post(
        f"{base}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    )


def _wait_for(base: str, status: int) -> httpx.Response:
    # Logging hooks run after the response is sent: state lands a moment later.
    for _ in range(40):
        r = _chat(base)
        if r.status_code == status and (status != 200 or "think" not in r.text):
            return r
        time.sleep(0.25)
    return r


def test_guardrail_degrades_then_blocks(proxy: tuple[str, Path]) -> None:
    base, d = proxy
    first = _chat(base)  # no state yet: allowed, untouched
    assert first.status_code == 200, first.text
    assert first.json()["choices"][0]["message"]["content"] == ANSWER
    degraded = _wait_for(base, 200)  # the logging hook fed state; review -> degrade
    assert degraded.json()["choices"][0]["message"]["content"] == "The answer is 4."
    _policy(d / "policy.yaml", "block", "block")  # hot reload
    time.sleep(1.1)
    blocked = _wait_for(base, 403)
    assert blocked.status_code == 403, blocked.text
    assert "distillguard" in blocked.text


def test_strip_reasoning() -> None:
    assert strip_reasoning("<thinking>a\nb</thinking> Done.") == "Done."
    assert strip_reasoning("<think>cut off") == ""
