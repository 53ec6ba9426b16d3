"""When the workers explained: the first signature call's start and the last one's end, on the
workers' own clocks, as Beam metrics.

A job's wall time includes the runner's start-up (worker processes importing TensorFlow and
loading the model), which a large job pays once. The steady rate a large job sees is the images
over the time from the first batch's start to the job's end; both ends are read here from
Beam's metrics instead of being estimated as the difference of two whole runs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

__all__ = ["NAMESPACE", "BatchTiming", "batch_timing", "record_batch", "start_batch"]

#: The namespace of the handler's metrics (RunInference's own ones included).
NAMESPACE = "saliency_batch"
_STARTS = Metrics.distribution(NAMESPACE, "batch_start_unix_ms")
_ENDS = Metrics.distribution(NAMESPACE, "batch_end_unix_ms")
_CPU = Metrics.counter(NAMESPACE, "worker_cpu_us_after_first_batch")
# This process's CPU time (all its threads: TensorFlow's, Beam's) when it was last counted; the
# first batch's start is the baseline, so a worker's start-up is not counted.
_cpu_lock = threading.Lock()
_cpu_counted: list[float] = []


def start_batch() -> float:
    """Mark a signature call's start; returns its ``time.time()``."""
    with _cpu_lock:
        if not _cpu_counted:
            _cpu_counted.append(time.process_time())
    return time.time()


def record_batch(started: float) -> None:
    """Record one signature call's start (from :func:`start_batch`) and its end (now), and the
    process's CPU time since it was last counted (reading, decoding and writing the rows of
    fused stages included)."""
    ended = time.time()
    _STARTS.update(int(started * 1000))
    _ENDS.update(int(ended * 1000))
    with _cpu_lock:
        cpu = time.process_time()
        _CPU.inc(int((cpu - _cpu_counted[0]) * 1e6))
        _cpu_counted[0] = cpu


@dataclass(frozen=True)
class BatchTiming:
    """The workers' clocks over a finished job (unix seconds, millisecond resolution).

    Attributes:
        first_start: when the first signature call of any worker began.
        last_end: when the last one ended.
        batches: how many signature calls there were.
        worker_cpu_seconds: the workers' CPU time (every thread) from each one's first signature
            call to its last: the cost of the steady part of the job, start-up excluded.
    """

    first_start: float
    last_end: float
    batches: int
    worker_cpu_seconds: float


def batch_timing(result: Any) -> BatchTiming | None:
    """The batch timing of a finished pipeline's result; None when the runner reports no
    metrics (or no batch ran)."""
    try:
        metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except (AttributeError, NotImplementedError):
        return None
    values: dict[str, Any] = {}
    for metric in [*metrics["distributions"], *metrics["counters"]]:
        value = metric.committed if metric.committed is not None else metric.attempted
        if value is not None:
            values[metric.key.metric.name] = value
    starts, ends = values.get("batch_start_unix_ms"), values.get("batch_end_unix_ms")
    if starts is None or ends is None or not starts.count:
        return None
    cpu_us = values.get("worker_cpu_us_after_first_batch", 0)
    return BatchTiming(starts.min / 1000.0, ends.max / 1000.0, int(starts.count), cpu_us / 1e6)
