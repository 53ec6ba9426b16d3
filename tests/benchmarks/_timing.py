"""Side-by-side timing: variants are interleaved call by call, so machine noise hits all alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Timing", "interleaved"]


@dataclass(frozen=True)
class Timing:
    """Per-call wall times of one variant, in milliseconds."""

    n: int
    p50_ms: float
    p99_ms: float
    min_ms: float
    mean_ms: float

    @classmethod
    def from_seconds(cls, samples: list[float]) -> Timing:
        """Summarizes raw per-call durations (seconds)."""
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        return cls(
            n=len(ms),
            p50_ms=float(np.median(ms)),
            p99_ms=float(np.percentile(ms, 99)),
            min_ms=float(ms.min()),
            mean_ms=float(ms.mean()),
        )

    def as_dict(self) -> dict[str, float]:
        """JSON-ready fields."""
        return asdict(self)


def interleaved(
    calls: Mapping[str, Callable[[], object]],
    repetitions: int,
    warmup: int = 3,
    *,
    self_timed: bool = False,
) -> dict[str, Timing]:
    """Times every call `repetitions` times, round-robin, rotating which one goes first.

    Args:
        calls: Variant name → zero-argument callable doing one complete call.
        repetitions: Timed calls per variant (after `warmup` untimed ones each).
        warmup: Untimed calls per variant first (graph/caches/connections warm).
        self_timed: Each call returns its own duration in seconds, which is used instead
            of the wall time around it (e.g. a child process timing TF_SessionRun without
            the pipe between the processes).

    Returns:
        Variant name → its `Timing`.

    Raises:
        ValueError: If `repetitions` < 1 or there is nothing to time.
    """
    if repetitions < 1 or not calls:
        raise ValueError(
            f"Need at least one call and one repetition; got {len(calls)} call(s) and "
            f"repetitions={repetitions}."
        )
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(repetitions):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            result = calls[name]()
            elapsed = time.perf_counter() - start
            samples[name].append(float(result) if self_timed else elapsed)  # type: ignore[arg-type]
    return {name: Timing.from_seconds(values) for name, values in samples.items()}
