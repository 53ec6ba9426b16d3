"""The evaluation report: per method, the randomization cascade and deletion/insertion
scores beside the random-order baseline, the verdict, and JSON output."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from exporter.evaluation._randomization import CascadeStep

__all__ = ["EvaluationReport", "MethodEvaluation", "PerturbationScores"]


@dataclasses.dataclass(frozen=True)
class PerturbationScores:
    """Deletion/insertion for one pixel order, averaged over the images.

    Attributes:
        deletion_auc: Mean normalized AUC of the deletion curves (lower is better).
        insertion_auc: Mean normalized AUC of the insertion curves (higher is better).
        deletion_curve: Mean target probability at each step (0 … 100 % deleted).
        insertion_curve: Mean target probability at each step (0 … 100 % inserted).
    """

    deletion_auc: float
    insertion_auc: float
    deletion_curve: tuple[float, ...]
    insertion_curve: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "deletion_auc": round(self.deletion_auc, 6),
            "insertion_auc": round(self.insertion_auc, 6),
            "deletion_curve": [round(v, 6) for v in self.deletion_curve],
            "insertion_curve": [round(v, 6) for v in self.insertion_curve],
        }


@dataclasses.dataclass(frozen=True)
class MethodEvaluation:
    """Everything measured for one explanation method.

    Attributes:
        method: Method name (`vanilla`, …, or a custom name).
        source: The signature the original maps came from, or `"custom"`.
        randomization: One step per layer with weights, top layer first.
        scores: Deletion/insertion in this method's saliency order.
        deletion_gain_over_random: Random-order deletion AUC − this method's (> 0: better).
        insertion_gain_over_random: This method's insertion AUC − random order's (> 0: better).
        failures: Why the method failed, one sentence each (empty: passed).
        example_map: The first image's original map [H, W] (for the figure).
    """

    method: str
    source: str
    randomization: tuple[CascadeStep, ...]
    scores: PerturbationScores
    deletion_gain_over_random: float
    insertion_gain_over_random: float
    failures: tuple[str, ...]
    example_map: np.ndarray = dataclasses.field(repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def randomized_spearman(self) -> float:
        """Mean Spearman |maps| correlation at the full cascade (every layer re-initialized)."""
        return self.randomization[-1].spearman if self.randomization else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "passed": self.passed,
            "failures": list(self.failures),
            "randomization": [
                {"layer": s.layer, "spearman": round(s.spearman, 6), "ssim": round(s.ssim, 6)}
                for s in self.randomization
            ],
            "randomized_spearman": round(self.randomized_spearman, 6),
            **self.scores.to_dict(),
            "deletion_gain_over_random": round(self.deletion_gain_over_random, 6),
            "insertion_gain_over_random": round(self.insertion_gain_over_random, 6),
        }


@dataclasses.dataclass(frozen=True)
class EvaluationReport:
    """The result of `evaluate_export` (or of the export gate).

    Attributes:
        export_dir: The evaluated SavedModel version directory.
        num_images: Images evaluated.
        settings: Steps, thresholds, blur and seed used.
        methods: One `MethodEvaluation` per method.
        random: The random-order baseline.
        skipped: Exported signatures not evaluated, with the reason.
        example_image: The first image [H, W, C] (for the figure).
    """

    export_dir: str
    num_images: int
    settings: dict[str, Any]
    methods: tuple[MethodEvaluation, ...]
    random: PerturbationScores
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)
    example_image: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.methods)

    @property
    def failures(self) -> list[str]:
        """Every failure as `method: reason`."""
        return [f"{m.method}: {reason}" for m in self.methods for reason in m.failures]

    def method(self, name: str) -> MethodEvaluation:
        for m in self.methods:
            if m.method == name:
                return m
        raise KeyError(f"No method {name!r} in the report; evaluated: {', '.join(m.method for m in self.methods)}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "export_dir": self.export_dir,
            "passed": self.passed,
            "num_images": self.num_images,
            "settings": self.settings,
            "random": self.random.to_dict(),
            "methods": {m.method: m.to_dict() for m in self.methods},
            "skipped": dict(self.skipped),
        }

    def write_json(self, path: str | Path) -> Path:
        """Writes `to_dict()` as indented JSON (parent directories created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def write_html(self, path: str | Path) -> Path:
        """Writes the self-contained HTML report (curves, cascade maps, summary) to ``path``."""
        from exporter.evaluation._html import evaluation_html, write_html

        return write_html(evaluation_html(self), path)

    def summary(self) -> str:
        """A fixed-width table, one row per method plus the random baseline."""
        rows = [
            f"{'method':<22} {'rand. spearman':>14} {'rand. ssim':>10} {'deletion':>9} "
            f"{'insertion':>9} {'del. gain':>9}  verdict"
        ]
        for m in self.methods:
            last = m.randomization[-1] if m.randomization else None
            rows.append(
                f"{m.method:<22} {m.randomized_spearman:>14.3f} {(last.ssim if last else float('nan')):>10.3f} "
                f"{m.scores.deletion_auc:>9.3f} {m.scores.insertion_auc:>9.3f} "
                f"{m.deletion_gain_over_random:>+9.3f}  {'PASS' if m.passed else 'FAIL'}"
            )
        rows.append(
            f"{'(random order)':<22} {'':>14} {'':>10} {self.random.deletion_auc:>9.3f} "
            f"{self.random.insertion_auc:>9.3f}"
        )
        return "\n".join(rows)
