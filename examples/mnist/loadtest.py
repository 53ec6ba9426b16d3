"""``make load``: K concurrent clients against the bundled server, without and with batching.

The server runs as a subprocess on 127.0.0.1 serving the MNIST demo CNN (random weights: the
numbers are about serving, not accuracy). Each phase sends a fixed count of mixed ``predict``
and ``explain`` requests (one image each, the online case batching is for) from K client
threads, each with its own ``ServingClient``; any error fails the run (exit 1). Every wait is
bounded. Prints p50/p99 latency and throughput per phase and the throughput gain of batching.

    python -m examples.mnist.loadtest [--clients 8,32] [--requests 400] [--workdir build/load]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from model_server import ServerProcess

MODEL_NAME = "mnist"

# TF Serving's recommended starting point for CPU (batching guide): small timeout, batches no
# larger than needed, one batch thread per core.
BATCHING_CONFIG = """\
max_batch_size { value: 32 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: %d }
"""


def _export(workdir: Path) -> Path:
    """The demo CNN exported once under ``workdir/models/mnist`` (reused when present)."""
    base = workdir / "models" / MODEL_NAME
    if base.is_dir() and any(p.name.isdigit() for p in base.iterdir()):
        return base
    import keras

    from examples.mnist.model import build_mnist_cnn
    from exporter import ExportConfig, export_model

    keras.utils.set_random_seed(0)
    export_model(build_mnist_cnn(), base, config=ExportConfig(name=MODEL_NAME))
    return base


def _server(base: Path, log_path: Path, extra: Sequence[str]) -> ServerProcess:
    """The bundled server on 127.0.0.1 (auto gRPC port, no REST), not yet started; a fresh log."""
    from model_server import ServerProcess

    log_path.unlink(missing_ok=True)
    return ServerProcess(
        MODEL_NAME, base, log_path=log_path, rest_api_port=0, poll_seconds=0, extra_args=extra
    )


def _phase(target: str, clients: int, requests: int, time_limit: float) -> dict:
    from serving_client import ServingClient

    rng = np.random.default_rng(0)
    pool = rng.random((64, 28, 28, 1), dtype=np.float32)
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(requests))
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit

    def client() -> None:
        with ServingClient(target, MODEL_NAME, timeout=30.0) as c:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                image = pool[i % len(pool)]
                start = time.perf_counter()
                try:
                    if i % 2:
                        c.explain(image)
                    else:
                        c.predict(image)
                except Exception as exc:  # noqa: BLE001 - every error is counted and printed
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)

    # Warm the channel and the server's graph paths first: not measured.
    from serving_client import ServingClient as _Warm

    with _Warm(target, MODEL_NAME, timeout=60.0) as warm:
        for _ in range(3):
            warm.predict(pool[0])
            warm.explain(pool[0])
    threads = [threading.Thread(target=client, name=f"load-client-{k}") for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit + 60)
    wall = time.perf_counter() - start
    done = len(latencies)
    lat_ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "done": done,
        "errors": errors,
        "unsent": requests - done - len(errors),
        "p50": float(np.percentile(lat_ms, 50)),
        "p99": float(np.percentile(lat_ms, 99)),
        "throughput": done / wall if wall > 0 else 0.0,
        "wall": wall,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: returns 0 when every request of every phase succeeded, else 1."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False, prog="python -m examples.mnist.loadtest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--clients", default="8,32",
                        help="concurrent clients (threads); a comma-separated list runs each, default 8,32")
    parser.add_argument("--requests", type=int, default=400,
                        help="requests per phase and client count, default 400 (x clients/8 when larger)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per phase at most")
    parser.add_argument("--workdir", default="build/load")
    args = parser.parse_args(argv)
    try:
        client_counts = [int(v) for v in args.clients.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--clients must be integers separated by commas; got {args.clients!r}")
    if not client_counts or not all(1 <= k <= 64 for k in client_counts) or not 1 <= args.requests <= 100_000:
        parser.error("--clients must be in [1, 64] and --requests in [1, 100000]")
    workdir = Path(args.workdir)
    print(f"exporting the MNIST demo CNN (random weights) under {workdir} ...", flush=True)
    base = _export(workdir)
    params = workdir / "batching.config"
    params.write_text(BATCHING_CONFIG % max(os.cpu_count() or 1, 1))
    phases = {
        "no batching": [],
        "batching": ["--enable_batching=true", f"--batching_parameters_file={params}"],
    }
    failed = False
    gains = []
    for clients in client_counts:
        requests = args.requests * max(1, clients // 8)
        results = {}
        for name, extra in phases.items():
            log_path = workdir / f"server-{name.replace(' ', '-')}.log"
            with _server(base, log_path, extra) as server:
                results[name] = _phase(server.grpc_target, clients, requests, args.time_limit)
        print(
            f"\nload: {clients} concurrent clients, {requests} requests per phase "
            "(half predict, half explain; one 28x28 image each), server on 127.0.0.1"
        )
        print(f"{'phase':<12} {'ok':>5} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
        for name, r in results.items():
            print(
                f"{name:<12} {r['done']:>5} {len(r['errors']):>6} {r['p50']:>8.1f} {r['p99']:>8.1f} "
                f"{r['throughput']:>8.1f}"
            )
            for error in r["errors"][:5]:
                print(f"  error: {error}")
            failed |= bool(r["errors"]) or r["unsent"] > 0
            if r["unsent"] > 0:
                print(f"  {r['unsent']} requests not sent within --time-limit {args.time_limit:g} s")
        gain = results["batching"]["throughput"] / max(results["no batching"]["throughput"], 1e-9)
        gains.append(f"x{gain:.2f} at {clients} clients")
        print(f"batching throughput gain under concurrency: x{gain:.2f}", flush=True)
    print(f"\nbatching throughput gain: {', '.join(gains)}")
    if failed:
        print("FAILED: the load test requires zero errors and every request answered", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
