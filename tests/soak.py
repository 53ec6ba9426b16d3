"""``make soak``: mixed valid and invalid traffic against the bundled server, for a bounded time.

The demo CNN (random weights) is exported with ``image_bytes`` input and served from a
subprocess on 127.0.0.1. Client threads send, over gRPC and REST, a mix of valid requests
(PNG digits to ``serving_default``, ``explain`` and ``explain_integrated_gradients``) and
invalid ones: decompression bombs (PNG, JPEG, BMP), GIFs, bytes that are no image, oversize
images, oversize batches, wrong dtypes, malformed JSON, calls cancelled right after they are
sent and calls whose deadline expires mid-run. It passes when

- no valid request fails,
- every invalid request gets its expected code (INVALID_ARGUMENT / HTTP 400) and a message
  saying what was wrong, and
- the server's RSS after warmup grows by less than 10 % (median of the last samples against
  the median of the first samples after warmup).

    python -m tests.soak [--minutes 10] [--clients 3] [--workdir build/soak]

Every wait is bounded: the run stops after ``--minutes`` (at most 10), every call has a
deadline, and the server is stopped on exit. Exit code 0 on pass, 1 on fail.
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.client
import json
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from serving_client.report import read_report
from tests.image_bombs import bmp, gif, patch_jpeg_size, png_bomb

MAX_MINUTES = 10.0
MODEL = "mnist"
RSS_GROWTH_LIMIT = 0.10


def _export(workdir: Path) -> tuple[Path, dict]:
    """The demo CNN exported with image_bytes input (reused when present); its report's limits."""
    base = workdir / "models" / MODEL
    versions = sorted(p for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []
    if not versions:
        import keras

        from examples.mnist.model import build_mnist_cnn
        from exporter import ExportConfig, SaliencyExporter
        from exporter._config import InputConfig, MethodsConfig
        from exporter.methods import IntegratedGradientsParams

        keras.utils.set_random_seed(0)
        config = ExportConfig(
            name=MODEL,
            input=InputConfig(format="image_bytes"),
            methods=MethodsConfig(enabled=("integrated_gradients",), params=[IntegratedGradientsParams(steps=16)]),
        )
        versions = [SaliencyExporter(build_mnist_cnn(), config).write(base).path]
    return base, read_report(versions[-1]).raw["limits"]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Tally:
    """Outcomes per case kind; failures keep their first few messages."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.failures: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, list[str]] = collections.defaultdict(list)

    def add(self, kind: str, outcome: str, failure: str | None = None) -> None:
        with self.lock:
            self.counts[(kind, outcome)] += 1
            if failure is not None:
                self.failures[kind] += 1
                if len(self.examples[kind]) < 3:
                    self.examples[kind].append(failure)


class Traffic:
    """The request kinds, each a callable that sends one request and judges its answer."""

    def __init__(self, grpc_target: str, rest_port: int, limits: dict, seed: int) -> None:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.grpc, self.tf = grpc, tf
        self.channel = grpc.insecure_channel(
            grpc_target, options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        )
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.rest_port = rest_port
        self.max_batch = {name: entry["max_batch"] for name, entry in limits["signatures"].items()}
        self.max_image_bytes = limits["input"]["max_image_bytes"]
        rng = np.random.default_rng(seed)
        self.digits = [tf.io.encode_png(rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)).numpy() for _ in range(8)]
        jpeg = tf.io.encode_jpeg(np.zeros((28, 28, 1), np.uint8)).numpy()
        self.bombs = [png_bomb(20000, 20000), patch_jpeg_size(jpeg, 30000, 30000), bmp(50000, -50000)]
        self.random = random.Random(seed)

    # -- request builders --------------------------------------------------------------------

    def _request(self, signature: str, images: list[bytes] | np.ndarray):
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.model_spec.signature_name = signature
        array = np.array(images, dtype=object) if isinstance(images, list) else images
        request.inputs["images"].CopyFrom(self.tf.make_tensor_proto(array))
        return request

    def _rest(self, body: bytes) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.rest_port, timeout=60)
        try:
            conn.request("POST", f"/v1/models/{MODEL}:predict", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, {"error": raw[:200].decode(errors="replace")}

    @staticmethod
    def _b64(data: bytes) -> dict:
        return {"b64": base64.b64encode(data).decode()}

    # -- judging -------------------------------------------------------------------------------

    def _expect_ok(self, tally: Tally, kind: str, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as exc:  # any failure of a valid request fails the soak
            details = exc.details() if isinstance(exc, self.grpc.RpcError) else exc
            tally.add(kind, "FAILED", f"{type(exc).__name__}: {details}")
        else:
            tally.add(kind, "OK")

    def _expect_refusal(self, tally: Tally, kind: str, request, needle: str) -> None:
        try:
            self.stub.Predict(request, timeout=60)
        except self.grpc.RpcError as err:
            code, details = err.code(), err.details() or ""
            if code == self.grpc.StatusCode.INVALID_ARGUMENT and needle in details:
                tally.add(kind, code.name)
            else:
                tally.add(kind, code.name, f"{code.name}: {details[:300]}")
        else:
            tally.add(kind, "OK", "an invalid request was answered OK")

    def _expect_rest_refusal(self, tally: Tally, kind: str, body: bytes, needle: str) -> None:
        status, payload = self._rest(body)
        if status == 400 and needle in str(payload.get("error", "")):
            tally.add(kind, "400")
        else:
            tally.add(kind, str(status), f"HTTP {status}: {str(payload)[:300]}")

    # -- the kinds -------------------------------------------------------------------------------

    def send(self, tally: Tally) -> None:
        """One request of a kind drawn at random (valid ones about half the time)."""
        r = self.random
        kind = r.choices(list(self.KINDS), weights=[w for w, _ in self.KINDS.values()])[0]
        self.KINDS[kind][1](self, tally, kind)

    def valid_grpc(self, tally: Tally, kind: str) -> None:
        signature = self.random.choice(["serving_default", "explain"])
        images = self.random.choices(self.digits, k=self.random.randint(1, 8))

        def call():
            response = self.stub.Predict(self._request(signature, images), timeout=60)
            logits = self.tf.make_ndarray(response.outputs["logits"])
            if logits.shape != (len(images), 10) or not np.isfinite(logits).all():
                raise AssertionError(f"logits of shape {logits.shape}")

        self._expect_ok(tally, kind, call)

    def valid_ig(self, tally: Tally, kind: str) -> None:
        images = self.random.choices(self.digits, k=self.random.randint(1, 4))

        def call():
            response = self.stub.Predict(self._request("explain_integrated_gradients", images), timeout=120)
            if self.tf.make_ndarray(response.outputs["saliency"]).shape != (len(images), 28, 28):
                raise AssertionError("saliency of the wrong shape")

        self._expect_ok(tally, kind, call)

    def valid_rest(self, tally: Tally, kind: str) -> None:
        images = self.random.choices(self.digits, k=self.random.randint(1, 8))

        def call():
            status, payload = self._rest(json.dumps({"instances": [{"images": self._b64(i)} for i in images]}).encode())
            if status != 200 or len(payload["predictions"]) != len(images):
                raise AssertionError(f"HTTP {status}: {str(payload)[:300]}")

        self._expect_ok(tally, kind, call)

    def bomb_grpc(self, tally: Tally, kind: str) -> None:
        images = [self.random.choice(self.digits), self.random.choice(self.bombs)]
        self._expect_refusal(tally, kind, self._request(self.random.choice(["serving_default", "explain"]), images), "declares")

    def bomb_rest(self, tally: Tally, kind: str) -> None:
        body = json.dumps({"instances": [{"images": self._b64(self.random.choice(self.bombs))}]}).encode()
        self._expect_rest_refusal(tally, kind, body, "declares")

    def oversize_batch(self, tally: Tally, kind: str) -> None:
        signature = self.random.choice(sorted(self.max_batch))
        images = [self.digits[0]] * (self.max_batch[signature] + self.random.randint(1, 50))
        self._expect_refusal(tally, kind, self._request(signature, images), "exceeds the maximum batch")

    def oversize_rest(self, tally: Tally, kind: str) -> None:
        count = self.max_batch["serving_default"] + 1
        body = json.dumps({"instances": [{"images": self._b64(self.digits[0])}] * count}).encode()
        self._expect_rest_refusal(tally, kind, body, "exceeds the maximum batch")

    def oversize_image(self, tally: Tally, kind: str) -> None:
        image = self.digits[0] + bytes(self.max_image_bytes)
        self._expect_refusal(tally, kind, self._request("serving_default", [image]), "input.max_image_bytes")

    def gif(self, tally: Tally, kind: str) -> None:
        self._expect_refusal(tally, kind, self._request("explain", [gif(28, 28)]), "is a GIF")

    def garbage(self, tally: Tally, kind: str) -> None:
        data = bytes(self.random.getrandbits(8) for _ in range(self.random.randint(0, 64)))
        if data[:2] in (b"BM", b"\xff\xd8") or data[:4] in (b"\x89PNG", b"GIF8", b"RIFF"):
            data = b"x" + data
        self._expect_refusal(tally, kind, self._request("serving_default", [data]), "could not be decoded")

    def wrong_dtype(self, tally: Tally, kind: str) -> None:
        request = self._request("serving_default", np.zeros((2, 28, 28, 1), np.float32))
        self._expect_refusal(tally, kind, request, "string")

    def bad_json(self, tally: Tally, kind: str) -> None:
        body = self.random.choice([b"{", b"[1,2", b'{"instances": 3}', b'{"inputs": {"images": [1.5]}}'])
        status, payload = self._rest(body)
        if status == 400 and payload.get("error"):
            tally.add(kind, "400")
        else:
            tally.add(kind, str(status), f"HTTP {status}: {str(payload)[:300]}")

    def cancelled(self, tally: Tally, kind: str) -> None:
        future = self.stub.Predict.future(self._request("explain_integrated_gradients", self.digits[:4]), timeout=60)
        time.sleep(self.random.uniform(0, 0.02))
        future.cancel()
        try:
            future.result(timeout=60)
        except self.grpc.FutureCancelledError:
            tally.add(kind, "CANCELLED")
        except self.grpc.RpcError as err:
            ok = err.code() in (self.grpc.StatusCode.CANCELLED,)
            tally.add(kind, err.code().name, None if ok else f"{err.code().name}: {err.details()}")
        else:
            tally.add(kind, "OK")  # it finished before the cancel: fine

    def deadline(self, tally: Tally, kind: str) -> None:
        try:
            self.stub.Predict(self._request("explain_integrated_gradients", self.digits * 4), timeout=0.05)
        except self.grpc.RpcError as err:
            ok = err.code() == self.grpc.StatusCode.DEADLINE_EXCEEDED
            tally.add(kind, err.code().name, None if ok else f"{err.code().name}: {err.details()}")
        else:
            tally.add(kind, "OK")  # fast enough: fine

    #: kind → (weight, sender)
    KINDS: dict[str, tuple[float, Callable[[Traffic, Tally, str], None]]] = {
        "valid_grpc": (6, valid_grpc),
        "valid_ig": (1, valid_ig),
        "valid_rest": (3, valid_rest),
        "bomb_grpc": (1.5, bomb_grpc),
        "bomb_rest": (1, bomb_rest),
        "oversize_batch": (0.5, oversize_batch),
        "oversize_rest": (0.3, oversize_rest),
        "oversize_image": (0.5, oversize_image),
        "gif": (0.5, gif),
        "garbage": (1, garbage),
        "wrong_dtype": (0.5, wrong_dtype),
        "bad_json": (0.5, bad_json),
        "cancelled": (0.5, cancelled),
        "deadline": (0.5, deadline),
    }


def run_soak(seconds: float, clients: int, workdir: Path, *, out=sys.stdout) -> bool:
    """Runs the soak; prints the outcome table and the RSS figures. Returns whether it passed."""
    from model_server import ServerProcess

    seconds = min(seconds, MAX_MINUTES * 60)
    base, limits = _export(workdir)
    print(f"limits: {json.dumps({k: v['max_batch'] for k, v in limits['signatures'].items()})}, "
          f"input {json.dumps(limits['input'])}", file=out)
    tally = Tally()
    samples: list[tuple[float, int]] = []
    with ServerProcess(MODEL, base, log_path=workdir / "server.log", poll_seconds=0) as server:
        pid = server.process.pid
        stop = threading.Event()
        start = time.monotonic()

        def client(seed: int) -> None:
            traffic = Traffic(server.grpc_target, server.rest_port, limits, seed)
            try:
                while not stop.is_set():
                    traffic.send(tally)
            finally:
                traffic.channel.close()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for thread in threads:
            thread.start()
        while time.monotonic() - start < seconds:
            samples.append((time.monotonic() - start, _rss_kib(pid)))
            time.sleep(min(2.0, max(seconds / 60, 0.5)))
        stop.set()
        for thread in threads:
            thread.join(timeout=180)
        alive = server.process.poll() is None
    warmup = max(seconds * 0.2, 10.0)
    after = [rss for t, rss in samples if t >= warmup]
    window = max(3, len(after) // 10)
    baseline = statistics.median(after[:window]) if after else 0
    final = statistics.median(after[-window:]) if after else 0
    growth = (final - baseline) / baseline if baseline else float("inf")

    print(f"\n{'kind':16} outcome counts", file=out)
    for kind in Traffic.KINDS:
        outcomes = {o: n for (k, o), n in sorted(tally.counts.items()) if k == kind}
        print(f"{kind:16} {outcomes}", file=out)
    valid_failed = sum(n for kind, n in tally.failures.items() if kind.startswith("valid"))
    invalid_unclear = sum(n for kind, n in tally.failures.items() if not kind.startswith("valid"))
    for kind, examples in tally.examples.items():
        print(f"  {kind}: {examples}", file=out)
    total = sum(tally.counts.values())
    print(f"\n{total} requests in {seconds:.0f} s from {clients} clients; server alive: {alive}", file=out)
    print(f"RSS after warmup ({warmup:.0f} s): {baseline / 1024:.1f} MiB → {final / 1024:.1f} MiB "
          f"({growth:+.1%}; peak {max(r for _, r in samples) / 1024:.1f} MiB)", file=out)
    passed = alive and valid_failed == 0 and invalid_unclear == 0 and growth < RSS_GROWTH_LIMIT and total > 0
    print(f"valid requests failed: {valid_failed}; invalid ones without a clear error: {invalid_unclear}; "
          f"{'PASS' if passed else 'FAIL'}", file=out)
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--minutes", type=float, default=MAX_MINUTES, help=f"run time (at most {MAX_MINUTES:g})")
    parser.add_argument("--clients", type=int, default=3, help="client threads")
    parser.add_argument("--workdir", type=Path, default=Path("build/soak"))
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES:g}]; received {args.minutes}")
    if args.clients < 1:
        parser.error(f"--clients must be >= 1; received {args.clients}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    return 0 if run_soak(args.minutes * 60, args.clients, args.workdir) else 1


if __name__ == "__main__":
    sys.exit(main())
