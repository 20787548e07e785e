"""HTTP decision service (FastAPI): `/v1/decide` for canonical events, `/v1/portkey` for Portkey webhooks.

Run: `uvicorn --factory distillguard.online.service:app_from_env --host 127.0.0.1 --port 8700`
with DISTILLGUARD_SECRET set (callers send it in the `X-DistillGuard-Key` header) and the
detector's DISTILLGUARD_* variables (see `decide.detector_from_env`).

Mutual TLS, so only the gateway's workers can reach it, is uvicorn's own: add
`--ssl-certfile server.pem --ssl-keyfile server.pem --ssl-ca-certs gateway-ca.pem --ssl-cert-reqs 2`
and a client without a certificate from that CA is refused in the handshake
(tests/online/test_service_mtls.py runs exactly this). The shared secret is still checked.

The service stores no prompt text: events fold into numeric state and logs carry ids, verdicts
and timings only (DISTILLGUARD_LOG_PROMPTS=1 adds the prompt to the decision log line).
Bodies over `max_body_bytes` are refused with 413. The caller's address in the logs is resolved
over DISTILLGUARD_TRUSTED_PROXIES only, so a client-written X-Forwarded-For is never believed.
"""

from __future__ import annotations

import gc
import hmac
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pyarrow as pa
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from distillguard.io.base import (
    IPNetwork,
    RecordError,
    as_bool,
    as_float,
    as_int,
    as_str,
    as_time,
    check_required,
    parse_networks,
    resolve_client_ip,
)
from distillguard.online.decide import OnlineDetector, detector_from_env
from distillguard.schema import EVENT_SCHEMA

KEY_HEADER = "X-DistillGuard-Key"
log = logging.getLogger("distillguard.online")

_COERCE: dict[Any, Callable[[Any, str], Any]] = {
    pa.string(): as_str,
    pa.int64(): as_int,
    pa.float64(): as_float,
    pa.bool_(): as_bool,
}


_FIELDS: tuple[tuple[str, Callable[[Any, str], Any]], ...] = tuple(
    (f.name, as_time if pa.types.is_timestamp(f.type) else _COERCE[f.type]) for f in EVENT_SCHEMA
)


def event_from_json(obj: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """A canonical event from JSON (times as ISO 8601 or epoch), typed per EVENT_SCHEMA."""
    out: dict[str, Any] = {}
    for name, coerce in _FIELDS:
        value = obj.get(name)
        out[name] = None if value is None else coerce(value, name)
    out["request_id"] = out["request_id"] or request_id
    out["source_format"] = out["source_format"] or "http"
    out["status"] = out["status"] or "success"
    if out["content_present"] is None:
        out["content_present"] = out["user_text"] is not None
    check_required(out)
    return out


def _portkey_event(body: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """Portkey hook payload (request.json = the chat body, metadata = the gateway's) as an event."""
    req = body.get("request") or {}
    chat = req.get("json") or {}
    meta = body.get("metadata") or {}
    messages = chat.get("messages") or []
    user = "\n".join(
        m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)
    )
    return event_from_json(
        {
            "request_id": meta.get("requestId") or request_id,
            "source_format": "portkey",
            "start_time": time.time(),
            "account_id": meta.get("user") or meta.get("account_id") or meta.get("apiKeyHash"),
            "end_user_id": chat.get("user"),
            "client_ip": meta.get("client_ip"),
            "model_requested": chat.get("model"),
            "temperature": chat.get("temperature"),
            "max_tokens": chat.get("max_completion_tokens", chat.get("max_tokens")),
            "n": chat.get("n"),
            "stream": chat.get("stream"),
            "user_text": user or None,
        },
        request_id,
    )


_DECIDE_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "update",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "default": True},
            "description": "fold the event into state first (false: the request path, a cached lookup)",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "a canonical event"}}},
    },
}
_TRUE, _FALSE = frozenset({"1", "true", "on", "yes"}), frozenset({"0", "false", "off", "no"})


def _query_bool(value: str | None, default: bool) -> bool:
    """A boolean query parameter, spelled as FastAPI accepts them; 422 otherwise."""
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise HTTPException(422, f"update: {value!r} is not a boolean")


class _RequestGuard:
    """Request id on every response (the caller's X-Request-ID or a new one) and the body size limit.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware runs each request through extra tasks
    and streams, which was half of the service's time per request under load."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, refused: Counter) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = (headers.get(b"x-request-id") or uuid.uuid4().hex.encode())[:128]
        scope.setdefault("state", {})["request_id"] = rid.decode("latin-1")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            self.refused.labels("too_large").inc()
            response = JSONResponse({"detail": "body too large"}, 413, headers={"X-Request-ID": rid.decode()})
            await response(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        await self.app(scope, receive, send_with_id)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        return orjson.dumps(
            {"ts": record.created, "level": record.levelname, "msg": record.getMessage(), **fields}
        ).decode()


def create_app(
    detector: OnlineDetector,
    secret: str,
    trusted_proxies: tuple[IPNetwork, ...] = (),
    max_body_bytes: int = 256 * 1024,
    log_prompts: bool = False,
) -> FastAPI:
    """The decision service around one detector; every endpoint but /healthz needs the shared secret."""
    if not secret:
        raise ValueError("a shared secret is required")
    registry = CollectorRegistry()
    decisions = Counter("distillguard_decisions", "Decisions by verdict", ["verdict"], registry=registry)
    refused = Counter(
        "distillguard_refused_requests", "Requests refused before deciding", ["reason"], registry=registry
    )
    state_errors = Counter(
        "distillguard_state_errors", "Decisions made while state was down", registry=registry
    )
    latency = Histogram(
        "distillguard_decide_seconds",
        "decide() latency",
        buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1),
        registry=registry,
    )
    app = FastAPI(title="distillguard decision service", version="1")
    expected = secret.encode()

    app.add_middleware(_RequestGuard, max_body_bytes=max_body_bytes, refused=refused)

    async def authenticated(request: Request) -> None:
        given = request.headers.get(KEY_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            refused.labels("unauthorized").inc()
            raise HTTPException(401, "missing or wrong " + KEY_HEADER)

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()  # chunked bodies carry no Content-Length: check the size read
        if len(raw) > max_body_bytes:
            refused.labels("too_large").inc()
            raise HTTPException(413, "body too large")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, f"malformed JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise HTTPException(400, "expected a JSON object")
        return obj

    def run(request: Request, event: dict[str, Any], update: bool) -> dict[str, Any]:
        t = time.perf_counter()
        decision = detector.decide(event, update=update)
        elapsed = time.perf_counter() - t
        latency.observe(elapsed)
        decisions.labels(decision.verdict).inc()
        if decision.state_error:
            state_errors.inc()
        peer = request.client.host if request.client else None
        fields = {
            "request_id": request.state.request_id,
            "event_id": decision.request_id,
            "account_id": decision.account_id,
            "verdict": decision.verdict,
            "raw_verdict": decision.raw_verdict,
            "risk": round(decision.risk, 4),
            "decide_ms": round(elapsed * 1e3, 3),
            "caller": resolve_client_ip(request.headers.get("x-forwarded-for"), peer, trusted_proxies),
        }
        if log_prompts:
            fields["prompt"] = event.get("user_text")
        log.info("decision", extra={"fields": fields})
        return decision.to_dict()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", dependencies=[Depends(authenticated)])
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/decide", openapi_extra=_DECIDE_OPENAPI, response_class=Response)
    async def decide(request: Request) -> Response:
        """Decision for one canonical event; `update=false` only reads the account's cached risk."""
        # The key, the body and the query are read here rather than through FastAPI's dependency
        # resolution and response validation, which were most of the service's own time per request.
        await authenticated(request)
        obj = await body(request)
        update = _query_bool(request.query_params.get("update"), default=True)
        try:
            event = event_from_json(obj, request.state.request_id)
        except RecordError as exc:
            raise HTTPException(422, f"{exc.field}: {exc.reason}") from exc
        # The request path (a cached lookup) runs on the event loop; text signals go to a thread.
        result = (
            await run_in_threadpool(run, request, event, update) if update else run(request, event, update)
        )
        return Response(orjson.dumps(result), media_type="application/json")

    @app.post("/v1/portkey", dependencies=[Depends(authenticated)])
    async def portkey(request: Request, obj: dict = Depends(body)) -> dict[str, Any]:  # noqa: B008
        """Portkey webhook guardrail: `verdict` false stops the request (block, verification, throttle)."""
        try:
            event = _portkey_event(obj, request.state.request_id)
        except RecordError as exc:
            raise HTTPException(422, f"{exc.field}: {exc.reason}") from exc
        update = obj.get("eventType") != "afterRequestHook"
        decision = await run_in_threadpool(run, request, event, update)
        stop = {"block", "step_up_verification", "throttle"} & set(decision["actions"])
        return {"verdict": not stop, "data": decision}

    return app


def app_from_env() -> FastAPI:
    """The service configured by environment (for `uvicorn --factory`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    app = create_app(
        detector_from_env(),
        os.environ.get("DISTILLGUARD_SECRET", ""),
        parse_networks(os.environ.get("DISTILLGUARD_TRUSTED_PROXIES", "").split(",")),
        int(os.environ.get("DISTILLGUARD_MAX_BODY_BYTES", 256 * 1024)),
        os.environ.get("DISTILLGUARD_LOG_PROMPTS") == "1",
    )
    # The model, the IP tables and the policy live as long as the process: moved out of the
    # collector's reach, a full collection no longer walks them in the middle of a request.
    gc.collect()
    gc.freeze()
    return app
