"""When the workers explained: the read stage, the first signature call's start and the last
one's end, the last output written, and which worker process ran each call, on the workers' own
clocks, as Beam metrics.

A job's wall time includes the runner's start-up (worker processes importing TensorFlow and
loading the model) and its shut-down (the worker processes exiting), which a large job pays once
each. The steady rate a large job sees is the images over the time the job spends on them: the
read stage (before the records are spread over the workers) plus the time from the first
signature call to the last output written (``summary.json``, after the Parquet and dead-letter
files are final). These are read here from Beam's metrics instead of being estimated as the
difference of two whole runs.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

__all__ = [
    "NAMESPACE", "BatchTiming", "batch_timing", "record_batch", "record_outputs_written", "record_read",
    "start_batch",
]

#: The namespace of the handler's metrics (RunInference's own ones included).
NAMESPACE = "saliency_batch"
_STARTS = Metrics.distribution(NAMESPACE, "batch_start_unix_ms")
_ENDS = Metrics.distribution(NAMESPACE, "batch_end_unix_ms")
_CPU = Metrics.counter(NAMESPACE, "worker_cpu_us_after_first_batch")
_READ_STARTS = Metrics.distribution(NAMESPACE, "read_bundle_start_unix_ms")
_READ_ENDS = Metrics.distribution(NAMESPACE, "read_bundle_end_unix_ms")
_WRITTEN = Metrics.distribution(NAMESPACE, "outputs_written_unix_ms")
#: One counter per worker process: the signature calls it ran (``batches_in_process_<pid>``).
_PER_PROCESS = "batches_in_process_"
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
    Metrics.counter(NAMESPACE, f"{_PER_PROCESS}{os.getpid()}").inc()
    with _cpu_lock:
        cpu = time.process_time()
        _CPU.inc(int((cpu - _cpu_counted[0]) * 1e6))
        _cpu_counted[0] = cpu


def record_read(started: float) -> None:
    """Record one bundle of the read stage: its start (a ``time.time()``) and its end (now)."""
    _READ_STARTS.update(int(started * 1000))
    _READ_ENDS.update(int(time.time() * 1000))


def record_outputs_written() -> None:
    """Record that the job's last output (the summary, written after every other file) is
    written."""
    _WRITTEN.update(int(time.time() * 1000))


@dataclass(frozen=True)
class BatchTiming:
    """The workers' clocks over a finished job (unix seconds, millisecond resolution).

    Attributes:
        first_start: when the first signature call of any worker began.
        last_end: when the last one ended.
        batches: how many signature calls there were.
        worker_cpu_seconds: the workers' CPU time (every thread) from each one's first signature
            call to its last: the cost of the steady part of the job, start-up excluded.
        batches_per_worker: the signature calls of each worker process that ran any, most
            first (two entries when two workers shared the job).
        read_seconds: the read stage's wall time (its first bundle's start to its last one's
            end); 0 when the pipeline reported none.
        outputs_written: when the summary, the last output, was written; None if it was not.
    """

    first_start: float
    last_end: float
    batches: int
    worker_cpu_seconds: float
    batches_per_worker: tuple[int, ...] = ()
    read_seconds: float = 0.0
    outputs_written: float | None = None

    @property
    def steady_seconds(self) -> float:
        """The wall time the job spent on its records: the read stage, then the first signature
        call to the last output written (to the last call's end if no output time was
        recorded). Start-up and shut-down are not in it."""
        end = self.outputs_written if self.outputs_written is not None else self.last_end
        return self.read_seconds + end - self.first_start


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
            # a name can be reported per step; a counter's values add up, a distribution's
            # are one result per name here (each is updated in one step)
            name = metric.key.metric.name
            values[name] = values[name] + value if name.startswith(_PER_PROCESS) and name in values else value
    starts, ends = values.get("batch_start_unix_ms"), values.get("batch_end_unix_ms")
    if starts is None or ends is None or not starts.count:
        return None
    cpu_us = values.get("worker_cpu_us_after_first_batch", 0)
    per_worker = tuple(sorted((int(v) for k, v in values.items() if k.startswith(_PER_PROCESS)), reverse=True))
    read_starts, read_ends = values.get("read_bundle_start_unix_ms"), values.get("read_bundle_end_unix_ms")
    read_seconds = 0.0
    if read_starts is not None and read_ends is not None and read_starts.count:
        read_seconds = (read_ends.max - read_starts.min) / 1000.0
    written = values.get("outputs_written_unix_ms")
    return BatchTiming(
        starts.min / 1000.0, ends.max / 1000.0, int(starts.count), cpu_us / 1e6, per_worker,
        read_seconds, written.max / 1000.0 if written is not None and written.count else None,
    )
