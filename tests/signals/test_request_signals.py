from datetime import UTC, datetime

from distillguard.schema import REQUEST_SIGNAL_SCHEMA, rows_to_batch
from distillguard.signals import request_signals


def _event(i: int, **kw):
    base = {
        "request_id": f"r{i}",
        "source_format": "litellm",
        "start_time": datetime(2026, 3, 1, tzinfo=UTC),
        "account_id": "a1",
        "status": "success",
        "content_present": True,
    }
    return base | kw


def test_request_signals_schema_and_nulls():
    rows = [
        _event(0, client_ip="24.0.0.1", user_agent="OpenAI/Python 1.54",
               user_text="Bonjour, peux-tu m'aider ?", prompt_tokens=10, completion_tokens=300),
        _event(1, content_present=False, client_ip="52.95.110.1", error_code="429", status="failure"),
    ]  # fmt: skip
    out = request_signals(rows_to_batch(rows))
    assert out.schema == REQUEST_SIGNAL_SCHEMA
    first, second = out.to_pylist()
    assert (
        first["language"] == "fr"
        and first["ua_family"] == "openai-python"
        and first["ip_kind"] == "residential"
    )
    assert first["template_id"] is not None and first["prompt_chars"] == 26 and first["output_ratio"] == 30.0
    assert second["language"] is None and second["template_id"] is None and second["prompt_chars"] is None
    assert second["is_rate_limited"] is True and first["is_rate_limited"] is False
