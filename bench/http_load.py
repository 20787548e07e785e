"""Open-loop HTTP load for bench/online.py, in a process of its own (imports nothing else):

    python bench/http_load.py --measure http-load --file BODY --url URL --http-requests N --rate R

prints one JSON line: p50/p99 in ms, requests sent, errors, throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

KEY_HEADER = "X-DistillGuard-Key"  # distillguard.online.service.KEY_HEADER, not imported: see above
SECRET = "bench-secret"


def percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {"n": len(a), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


async def load(
    url: str, body: bytes, headers: dict[str, str], n: int, rate: float, max_s: float
) -> dict[str, Any]:
    """Open-loop load: request i is sent at start + i / rate, whatever the answers before it did.

    aiohttp rather than httpx: the client shares the machine's two cores with the server, and
    httpx's per-request cost alone caps it near 300 requests/s here."""
    lat: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as client:

        async def one() -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                async with client.post(url, data=body, headers=headers) as r:
                    await r.read()
                    ok = r.status < 500
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                lat.append(time.perf_counter() - t)
            else:
                errors += 1

        start = time.perf_counter()
        tasks = []
        for i in range(n):
            due = start + i / rate
            if due - start > max_s:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return {**percentiles(lat), "sent": len(tasks), "errors": errors, "throughput_rps": len(lat) / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", choices=["http-load"], required=True)
    ap.add_argument("--file", type=Path, required=True, help="request body")
    ap.add_argument("--url", required=True)
    ap.add_argument("--http-requests", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=1000.0)
    args = ap.parse_args()
    headers = {KEY_HEADER: SECRET, "content-type": "application/json"}
    result = asyncio.run(load(args.url, args.file.read_bytes(), headers, args.http_requests, args.rate, 20))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
