"""Server-side request batching, like TF Serving's ``--enable_batching`` batching session.

Requests for the same servable, signature tensors and non-batch input shapes wait in one
queue; a batch closes when it holds ``max_batch_size`` rows or its oldest request has waited
``batch_timeout_micros``. A batch thread concatenates the inputs along dimension 0, pads the
batch up to the next ``allowed_batch_sizes`` entry (with copies of its first row, as TF
Serving), runs the session once and splits the outputs back. What differs from TF Serving, on
purpose: requests whose other dimensions differ go to different queues instead of failing
together, and a batch whose run fails is re-run one request at a time, so one bad request (a
NaN image caught by CheckNumerics) cannot fail the requests that happened to share its batch.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

import grpc
import numpy as np

from ._errors import ServingError, invalid_argument

log = logging.getLogger("model_server")

# BasicBatchScheduler's defaults, as TF Serving fills in unset BatchingParameters fields.
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_MAX_ENQUEUED_BATCHES = 10


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """The ``BatchingParameters`` this server honours (same names and meaning).

    Args:
        max_batch_size: most rows (dim-0 entries) in one batch; a larger request is refused.
        batch_timeout_micros: how long the oldest request of an open batch waits for more.
        num_batch_threads: batches run concurrently.
        max_enqueued_batches: per queue; a request that would need one more is refused with
            UNAVAILABLE (TF Serving's answer for a full queue).
        allowed_batch_sizes: if set, batches are padded up to the next entry; increasing, the
            last one equal to ``max_batch_size``.
        pad_variable_length_inputs: accepted for compatibility; inputs of different non-batch
            shapes are never concatenated here (they queue apart), so there is nothing to pad.
    """

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_micros: int = 0
    num_batch_threads: int = max(os.cpu_count() or 1, 1)
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"BatchingParameters.{name} must be >= 1; got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(
                f"BatchingParameters.batch_timeout_micros must be >= 0; got {self.batch_timeout_micros}"
            )
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)) or sizes[0] < 1:
                raise ValueError(
                    f"allowed_batch_sizes must be positive and strictly increasing; got {list(sizes)}"
                )
            if sizes[-1] != self.max_batch_size:
                raise ValueError(
                    "The last entry in allowed_batch_sizes must match max_batch_size; last "
                    f"entry was {sizes[-1]}; expected {self.max_batch_size}"
                )

    @classmethod
    def from_text(cls, text: str, *, source: str = "<text>") -> BatchingOptions:
        """Parse a text-format ``tensorflow.serving.BatchingParameters`` (``--batching_parameters_file``).

        Raises:
            ValueError: unparsable text, unknown fields, or inconsistent values.
        """
        from ._config_protos import batching_parameters_class, parse_text

        proto = parse_text(batching_parameters_class(), text, source)
        kwargs: dict = {}
        for name in ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches"):
            if proto.HasField(name):
                kwargs[name] = int(getattr(proto, name).value)
        kwargs["allowed_batch_sizes"] = tuple(int(v) for v in proto.allowed_batch_sizes)
        kwargs["pad_variable_length_inputs"] = bool(proto.pad_variable_length_inputs)
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc


class _Task:
    __slots__ = ("feeds", "size", "run", "done", "result", "error")

    def __init__(self, feeds: dict[str, np.ndarray], size: int, run: Callable) -> None:
        self.feeds = feeds
        self.size = size
        self.run = run
        self.done = threading.Event()
        self.result: list[np.ndarray] | None = None
        self.error: BaseException | None = None


class _Batch:
    __slots__ = ("tasks", "size", "created", "closed")

    def __init__(self) -> None:
        self.tasks: list[_Task] = []
        self.size = 0
        self.created = time.monotonic()
        self.closed = False


class _Queue:
    __slots__ = ("fetches", "batches")

    def __init__(self, fetches: list[str]) -> None:
        self.fetches = fetches
        self.batches: collections.deque[_Batch] = collections.deque()


# Run one session call: (fetches, feed_dict) -> list of arrays; raises ServingError.
SessionRun = Callable[[list[str], dict[str, np.ndarray]], list]


class BatchScheduler:
    """Queues, batch threads and the concatenate/split logic; one per server.

    Args:
        options: the batching parameters.
    """

    def __init__(self, options: BatchingOptions) -> None:
        self.options = options
        self._cond = threading.Condition()
        self._queues: dict[tuple, _Queue] = {}
        self._stopped = False
        self.batches_run = 0
        self.tasks_run = 0
        self._threads = [
            threading.Thread(target=self._worker, name=f"batch-thread-{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(
        self, owner: object, fetches: Sequence[str], feeds: dict[str, np.ndarray], session_run: SessionRun
    ) -> list:
        """Run ``fetches`` for one request inside a batch; blocks until its batch ran.

        Args:
            owner: the servable (queues are per servable: a new version gets new queues).
            fetches: output tensor names.
            feeds: input tensor name -> array; every array needs the same dim-0 size.
            session_run: how to run the servable's session.

        Returns:
            The fetched arrays for this request's rows only.

        Raises:
            ServingError: INVALID_ARGUMENT for inputs that cannot be batched, UNAVAILABLE when
                the queue is full, or the session's own error.
        """
        if not feeds:
            return session_run(list(fetches), feeds)
        sizes = set()
        for name, array in feeds.items():
            if array.ndim == 0:
                raise invalid_argument(
                    f"Batching session Run() input tensors must have at least one dimension; "
                    f"{name} is a scalar"
                )
            sizes.add(array.shape[0])
        if len(sizes) != 1:
            raise invalid_argument(
                "Batching session Run() input tensors must have equal 0th-dimension size"
            )
        size = sizes.pop()
        if size > self.options.max_batch_size:
            raise invalid_argument(
                f"Task size {size} is larger than maximum input batch size "
                f"{self.options.max_batch_size}"
            )
        if size == 0:
            return session_run(list(fetches), feeds)
        # The servable itself (not its id(), which a later version could reuse) is part of the
        # key; a queue is dropped once empty, so it never keeps an unloaded version alive.
        key = (
            owner,
            tuple(fetches),
            tuple(sorted((n, a.dtype.str, a.shape[1:]) for n, a in feeds.items())),
        )
        task = _Task(feeds, size, session_run)
        with self._cond:
            if self._stopped:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "The batch scheduler is stopped")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(list(fetches))
            last = queue.batches[-1] if queue.batches else None
            if last is None or last.closed or last.size + size > self.options.max_batch_size:
                if last is not None:
                    last.closed = True
                if len(queue.batches) >= self.options.max_enqueued_batches:
                    raise ServingError(
                        grpc.StatusCode.UNAVAILABLE,
                        "The batch scheduling queue to which this task was submitted is full",
                    )
                last = _Batch()
                queue.batches.append(last)
            last.tasks.append(task)
            last.size += size
            if last.size == self.options.max_batch_size:
                last.closed = True
            self._cond.notify_all()
        task.done.wait()
        if task.error is not None:
            raise task.error
        if task.result is None:  # the batch thread sets a result or an error before `done`
            raise ServingError(grpc.StatusCode.INTERNAL, "A batched run ended without a result")
        return task.result

    def stop(self) -> None:
        """Run what is queued, then end the batch threads."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    # ---- batch threads --------------------------------------------------------------------

    def _next_batch(self) -> tuple[_Queue, _Batch] | None:
        # Called with the lock held: the oldest batch that is full, closed or timed out.
        timeout = self.options.batch_timeout_micros / 1e6
        now = time.monotonic()
        best = None
        wait = None
        for key, queue in list(self._queues.items()):
            batch = queue.batches[0]
            ready = batch.closed or self._stopped or now - batch.created >= timeout
            if ready:
                if best is None or batch.created < best[2].created:
                    best = (key, queue, batch)
            else:
                left = batch.created + timeout - now
                wait = left if wait is None else min(wait, left)
        if best is not None:
            key, queue, batch = best
            queue.batches.popleft()
            batch.closed = True
            if not queue.batches:
                del self._queues[key]
            return queue, batch
        self._wait = wait
        return None

    def _worker(self) -> None:
        while True:
            with self._cond:
                while True:
                    picked = self._next_batch()
                    if picked is not None:
                        break
                    if self._stopped and not self._queues:
                        return
                    self._cond.wait(timeout=self._wait)
            queue, batch = picked
            try:
                self._run_batch(queue, batch)
            except BaseException as exc:  # never leave a waiting request hanging
                for task in batch.tasks:
                    if not task.done.is_set():
                        task.error = exc
                        task.done.set()

    def _run_batch(self, queue: _Queue, batch: _Batch) -> None:
        tasks = batch.tasks
        with self._cond:
            self.batches_run += 1
            self.tasks_run += len(tasks)
        if len(tasks) == 1 and not self.options.allowed_batch_sizes:
            self._run_one(queue, tasks[0])
            return
        names = list(tasks[0].feeds)
        total = batch.size
        padded = _padded_size(total, self.options.allowed_batch_sizes)
        feeds = {}
        for name in names:
            parts = [t.feeds[name] for t in tasks]
            if padded > total:
                first = parts[0][:1]
                parts.append(np.repeat(first, padded - total, axis=0))
            feeds[name] = np.concatenate(parts, axis=0)
        try:
            outputs = tasks[0].run(queue.fetches, feeds)
            for value in outputs:
                if np.ndim(value) == 0 or np.shape(value)[0] != padded:
                    raise ServingError(
                        grpc.StatusCode.INTERNAL,
                        "Batched output tensor's 0th dimension does not equal the sum of the "
                        "0th dimension sizes of the input tensors",
                    )
        except ServingError:
            if len(tasks) == 1:
                raise
            # Isolate the culprit: every request gets the answer it would get alone.
            for task in tasks:
                self._run_one(queue, task)
            return
        start = 0
        for task in tasks:
            task.result = [np.asarray(v)[start : start + task.size] for v in outputs]
            start += task.size
            task.done.set()

    @staticmethod
    def _run_one(queue: _Queue, task: _Task) -> None:
        try:
            task.result = task.run(queue.fetches, task.feeds)
        except BaseException as exc:
            task.error = exc
        task.done.set()

    _wait: float | None = None


def _padded_size(total: int, allowed: Sequence[int]) -> int:
    for size in allowed:
        if size >= total:
            return size
    return total
