"""Load on `genforge serve`: latency and images per second under concurrent clients, with and without
micro-batching, and a soak of mixed requests that watches the server's memory.

    python bench/serve_load.py RUN_DIR --detector DET_DIR [--clients 1,8,32] [--seconds 20]
        [--requests 2000] [--soak-minutes 10] [--write-md BENCHMARKS.md]

The server runs as its own process (`genforge serve`, loopback only), started twice: with
micro-batching (its defaults) and without it (`--max-batch 1 --max-wait-ms 0`: every request is
its own forward pass, one after another on the worker threads). The clients are asyncio tasks with
httpx in this process; each sends its next request when the last is answered (a closed loop), for
`--seconds` or `--requests` in all, whichever ends first (the load is bounded in count and time).
They share the machine's cores with the server: on 2 cores the clients' own work is part of what
the numbers measure, as it would be for a user's browser on the same machine.

Cases: sampling 1 image per request (the page's kind of request; what gathering helps), sampling
64 images per request (the latency target), and detection of 1 uploaded PNG per request. Targets
(issue 30): with 32 clients, sampling throughput at least 5x the rate of one request at a time; p99
under 1 s for a 64-image sample at 8 clients on 2 CPU cores. The soak sends a mix (sample 16,
detect 4, test images, a latent traverse) from 8 clients for `--soak-minutes` and reads the server's
resident memory every 10 s from /proc: memory flat and no error is the target.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from common import block_header, write_block

MD_START, MD_END = "<!-- serve-load:start -->", "<!-- serve-load:end -->"
NOTE = ("server (`genforge serve`, its default 2 worker threads) and clients (asyncio + httpx, one process) on "
        "the same cores, over loopback; \"x one at a time\": images/s over those of one client without gathering")
MODES = {"micro-batching": [], "one request per forward pass": ["--max-batch", "1", "--max-wait-ms", "0"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`genforge serve` in its own process on a free loopback port, until stopped."""

    def __init__(self, run: str, detector: str | None, extra: list[str]):
        self.port = free_port()
        cmd = [sys.executable, "-m", "genforge", "serve", run, "--port", str(self.port), "--queue-size", "1024",
               *(["--detector", detector] if detector else []), *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited: {self.proc.stderr.read().strip()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise SystemExit("the server did not become ready within 120 s")

    def rss_mib(self) -> float:
        """The server's resident memory (VmRSS of /proc/PID/status), in MiB."""
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()  # SIGTERM: the server drains and exits
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def closed_loop(make_request, clients: int, seconds: float, max_requests: int) -> dict:
    """`clients` tasks each sending the next request when the last is answered; latencies of the
    answered requests, images answered, errors, wall time."""
    latencies, errors, images, sent = [], [], 0, 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def worker():
            nonlocal images, sent
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                started = time.perf_counter()
                try:
                    response, n = await make_request(client)
                except httpx.HTTPError as e:
                    errors.append(type(e).__name__)
                    continue
                if response.status_code != 200:
                    errors.append(str(response.status_code))
                    continue
                latencies.append(time.perf_counter() - started)
                images += n
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "error_kinds": sorted(set(errors)),
            "images_per_s": images / wall, "requests_per_s": len(latencies) / wall,
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99), "wall_s": wall}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def cases(server: Server, model: str, upload: bytes, seed_counter) -> dict:
    """The request makers of each case: (response, images answered)."""
    async def sample(client, n):
        r = await client.post(f"{server.url}/v1/models/{model}/sample",
                              json={"n": n, "seed": next(seed_counter), "format": "grid"})
        return r, n

    async def detect(client):
        r = await client.post(f"{server.url}/v1/detect", files=[("images", ("x.png", upload, "image/png"))])
        return r, 1

    return {"sample 1 image": lambda c: sample(c, 1), "sample 64 images": lambda c: sample(c, 64),
            "detect 1 image": detect}


async def soak(server: Server, model: str, upload: bytes, minutes: float, clients: int = 8) -> dict:
    """Mixed requests for `minutes`; the server's memory every 10 s."""
    kinds = ["sample", "detect", "test-images", "traverse"]
    counts = {k: 0 for k in kinds}
    errors: list[str] = []
    memory = [(0.0, server.rss_mib())]
    started = time.perf_counter()
    deadline = started + 60 * minutes
    async with httpx.AsyncClient(timeout=60) as client:
        directions = (await client.get(f"{server.url}/v1/models/{model}/directions", params={"k": 3})).json()
        k = len(directions.get("scales", [])) or 3

        async def worker(i):
            step = 0
            while time.perf_counter() < deadline:
                kind = kinds[(i + step) % len(kinds)]
                step += 1
                try:
                    if kind == "sample":
                        r = await client.post(f"{server.url}/v1/models/{model}/sample",
                                              json={"n": 16, "seed": step, "format": "json"})
                    elif kind == "detect":
                        r = await client.post(f"{server.url}/v1/detect",
                                              files=[("images", (f"{j}.png", upload, "image/png")) for j in range(4)])
                    elif kind == "test-images":
                        r = await client.get(f"{server.url}/v1/models/{model}/test-images",
                                             params={"start": step % 100, "n": 8})
                    else:
                        r = await client.post(f"{server.url}/v1/models/{model}/traverse",
                                              json={"seed": i, "offsets": [((step % 7) - 3) / 3] * k})
                except httpx.HTTPError as e:
                    errors.append(f"{kind}: {type(e).__name__}")
                    continue
                if r.status_code != 200:
                    errors.append(f"{kind}: {r.status_code}")
                counts[kind] += 1

        async def watch():
            while time.perf_counter() < deadline:
                await asyncio.sleep(10)
                memory.append((time.perf_counter() - started, server.rss_mib()))

        await asyncio.gather(watch(), *(worker(i) for i in range(clients)))
    return {"minutes": minutes, "clients": clients, "counts": counts, "errors": len(errors),
            "error_kinds": sorted(set(errors)), "memory_mib": memory}


def soak_summary(result: dict) -> str:
    mem = [m for _, m in result["memory_mib"]]
    first_minute = [m for t, m in result["memory_mib"] if t <= 60] or mem[:1]
    return (f"{sum(result['counts'].values())} requests ({', '.join(f'{k} {v}' for k, v in result['counts'].items())}) "
            f"from {result['clients']} clients in {result['minutes']:g} min, {result['errors']} error(s); server memory "
            f"{mem[0]:.0f} MiB at the start, {max(first_minute):.0f} after the first minute, {max(mem):.0f} at most, "
            f"{mem[-1]:.0f} at the end (growth after the first minute: {mem[-1] - max(first_minute):+.0f} MiB)")


def write_md(path: Path, args, rows: list[dict], soak_result: dict | None, machine_note: str) -> None:
    # the one-request-at-a-time rate of each case: one client, no gathering
    single = {r["case"]: r for r in rows if r["clients"] == 1 and r["mode"] == "one request per forward pass"}
    lines = block_header(MD_START, "Serving under load (`genforge serve`)",
                         f"model: `{args.run}`; detector: `{args.detector}`", machine_note,
                         f"closed loop: each client sends its next request when the last is answered; "
                         f"{args.seconds:g} s or {args.requests} requests per row, whichever ends first")
    lines += ["| case | mode | clients | requests | errors | images/s | x one at a time | p50 ms | p99 ms |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = single.get(r["case"])
        speedup = f"{r['images_per_s'] / base['images_per_s']:.1f}" if base and base["images_per_s"] else "-"
        lines.append(f"| {r['case']} | {r['mode']} | {r['clients']} | {r['requests']} | {r['errors']} | "
                     f"{r['images_per_s']:.1f} | {speedup} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} |")
    if soak_result:
        lines += ["", f"Soak: {soak_summary(soak_result)}."]
    lines.append(MD_END)
    write_block(path, "\n".join(lines), MD_START, MD_END)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--detector", help="detector directory (detection cases are skipped without one)")
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--requests", type=int, default=2000, help="at most this many requests per row")
    p.add_argument("--soak-minutes", type=float, default=10, help="0 skips the soak")
    p.add_argument("--out", type=Path, default=Path("bench/out/serve-load.json"))
    p.add_argument("--write-md", type=Path)
    p.add_argument("--rewrite", action="store_true", help="write the Markdown block again from --out's JSON "
                   "(a table layout changed), measuring nothing")
    args = p.parse_args()
    if args.rewrite:
        saved = json.loads(args.out.read_text())
        write_md(args.write_md, args, saved["rows"], saved["soak"], NOTE)
        return
    model = Path(args.run).name
    upload = png_bytes(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))
    clients = [int(c) for c in args.clients.split(",")]
    rows, soak_result = [], None
    seeds = iter(range(10**9))
    for mode, extra in MODES.items():
        server = Server(args.run, args.detector, extra)
        try:
            for case, make in cases(server, model, upload, seeds).items():
                if case.startswith("detect") and not args.detector:
                    continue
                for n in clients:
                    result = asyncio.run(closed_loop(make, n, args.seconds, args.requests))
                    rows.append({"case": case, "mode": mode, **result})
                    print(json.dumps(rows[-1]), flush=True)
            if mode == "micro-batching" and args.soak_minutes > 0:
                soak_result = asyncio.run(soak(server, model, upload, args.soak_minutes))
                print(soak_summary(soak_result), flush=True)
        finally:
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "soak": soak_result}, indent=1))
    if args.write_md:
        write_md(args.write_md, args, rows, soak_result, NOTE)


if __name__ == "__main__":
    main()
