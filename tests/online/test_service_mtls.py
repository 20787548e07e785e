"""Mutual TLS in front of the decision service, run the way it is deployed: uvicorn with client
certificate verification (`--ssl-ca-certs`, `--ssl-cert-reqs 2`), on loopback.

A client without a certificate from the configured CA is refused during the handshake, before any
request reaches the app; one with a certificate gets through and still needs the shared secret.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from online_helpers import free_port, wait_port

from distillguard.online.service import KEY_HEADER
from distillguard.schema import VERDICTS

SECRET = "mtls-test-secret"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, trustme.LeafCert]]:
    tmp = tmp_path_factory.mktemp("mtls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("gateway-worker-1@example.test")
    ca_pem, server_pem, client_pem = tmp / "ca.pem", tmp / "server.pem", tmp / "client.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    server.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    client.private_key_and_cert_chain_pem.write_to_path(str(client_pem))
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "distillguard.online.service:app_from_env",
        "--host", "127.0.0.1", "--port", str(port),
        "--ssl-certfile", str(server_pem), "--ssl-keyfile", str(server_pem),
        "--ssl-ca-certs", str(ca_pem), "--ssl-cert-reqs", str(int(ssl.CERT_REQUIRED)),
    ]  # fmt: skip
    env = {**os.environ, "DISTILLGUARD_SECRET": SECRET}
    log = (tmp / "uvicorn.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, 120)
        yield f"https://127.0.0.1:{port}", ca_pem, client
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _context(ca_pem: Path, client: trustme.LeafCert | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_pem))
    if client is not None:
        client.configure_cert(ctx)
    return ctx


def test_client_certificate_required(served: tuple[str, Path, trustme.LeafCert]) -> None:
    url, ca_pem, _ = served
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(f"{url}/healthz", verify=_context(ca_pem, None), timeout=10)


def test_certificate_from_another_ca_refused(served: tuple[str, Path, trustme.LeafCert]) -> None:
    url, ca_pem, _ = served
    stranger = trustme.CA().issue_cert("gateway-worker-1@example.test")
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(f"{url}/healthz", verify=_context(ca_pem, stranger), timeout=10)


def test_client_with_certificate_still_needs_the_secret(served: tuple[str, Path, trustme.LeafCert]) -> None:
    url, ca_pem, client = served
    with httpx.Client(verify=_context(ca_pem, client), timeout=10) as http:
        assert http.get(f"{url}/healthz").json() == {"status": "ok"}
        event = {"account_id": "acct-1", "start_time": "2026-03-02T10:00:00+00:00", "user_text": "hello"}
        assert http.post(f"{url}/v1/decide", json=event).status_code == 401
        r = http.post(f"{url}/v1/decide", json=event, headers={KEY_HEADER: SECRET})
        assert r.status_code == 200 and r.json()["verdict"] in VERDICTS
