"""Comparing two versions before a rollout: what breaks a client, and how much behaviour drifts.

`diff_versions(old, new)`:

(a) Contract compatibility, from the SignatureDefs in each `saved_model.pb` (the files,
    not the reports, are what TF Serving serves). Every signature, input and output of OLD
    is classified as *compatible* (a client of OLD still works), *breaking* (a client of
    OLD gets an error or a different meaning) or, for what only NEW has, *added*:

    - a dropped signature, input or output; a changed dtype or method name: breaking;
    - shapes: the batch dimension must stay dynamic; the other dimensions must stay the
      same (an input dimension that becomes dynamic accepts more: compatible); the class
      dimension K of `logits`/`probabilities` may change only as a documented
      class-names change (`allow_class_change`, and both reports record class_names);
    - a new input without a default, a lost or changed default: breaking (clients that
      omit the input would fail or be answered differently); a new input with a
      default: added;
    - changed class names with the same K: breaking unless `allow_class_change`.

(b) Behaviour drift on reference images (the old report's verification samples, or
    given images): prediction agreement, probability shift, and for every explanation
    signature both versions have, the change of the maps of the same class (OLD's
    prediction): 1 − SSIM and the Spearman rank correlation of |maps|, with the metrics
    of `exporter.evaluation`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exporter._errors import ConfigError
from exporter._verify_dir import input_config, reference_samples
from serving_client import contract as c
from serving_client.report import ExportReport, ReportError, read_report

__all__ = [
    "ADDED",
    "BREAKING",
    "COMPATIBLE",
    "ContractChange",
    "DiffResult",
    "DriftThresholds",
    "compare_contracts",
    "diff_versions",
]

BREAKING, COMPATIBLE, ADDED = "breaking", "compatible", "added"
#: Outputs whose last dimension is the class count K.
_CLASS_OUTPUTS = (c.LOGITS, c.PROBABILITIES)
#: Reference images drawn from the old report's settings unless told otherwise.
DEFAULT_NUM_IMAGES = 16


@dataclasses.dataclass(frozen=True)
class ContractChange:
    """One signature or tensor of the diff.

    Attributes:
        kind: "breaking", "compatible" or "added".
        signature: The signature name ("*" for the whole model, e.g. its classes).
        tensor: "inputs/<alias>", "outputs/<alias>", "class_names", or None for the
            signature itself.
        detail: What changed (or what stayed).
    """

    kind: str
    signature: str
    tensor: str | None
    detail: str


@dataclasses.dataclass(frozen=True)
class DriftThresholds:
    """When behaviour drift fails the diff (`saliency-export diff --min-agreement` etc.).

    Attributes:
        min_agreement: Minimum fraction of images with the same predicted class.
        max_probability_shift: Maximum |Δ probability| of any class on any image.
        max_mean_dissimilarity: Maximum mean 1 − SSIM of a signature's maps.
        max_dissimilarity: Maximum 1 − SSIM of any one map (1.0: off; SSIM ≥ −1).
        min_mean_spearman: Minimum mean Spearman correlation of |maps| of a signature.
    """

    min_agreement: float = 0.95
    max_probability_shift: float = 0.2
    max_mean_dissimilarity: float = 0.5
    max_dissimilarity: float = 1.0
    min_mean_spearman: float = 0.3

    def __post_init__(self) -> None:
        for name in ("min_agreement", "max_probability_shift"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1]; received {value}.")
        for name in ("max_mean_dissimilarity", "max_dissimilarity"):
            value = getattr(self, name)
            if not 0.0 <= value <= 2.0:
                raise ConfigError(f"{name} (1 − SSIM) must be in [0, 2]; received {value}.")
        if not -1.0 <= self.min_mean_spearman <= 1.0:
            raise ConfigError(f"min_mean_spearman must be in [-1, 1]; received {self.min_mean_spearman}.")


@dataclasses.dataclass(frozen=True)
class DiffResult:
    """The outcome of `diff_versions`: passed unless a change is breaking or drift is too large."""

    old: str
    new: str
    changes: tuple[ContractChange, ...]
    drift: Mapping[str, Any]
    drift_failures: tuple[str, ...]
    thresholds: DriftThresholds
    seconds: float

    @property
    def breaking(self) -> list[ContractChange]:
        """The breaking changes."""
        return [change for change in self.changes if change.kind == BREAKING]

    @property
    def passed(self) -> bool:
        """True when nothing breaks a client of OLD and the drift is within the thresholds."""
        return not self.breaking and not self.drift_failures

    @property
    def failures(self) -> list[str]:
        """One line per breaking change or drift failure."""
        lines = [f"breaking: {_where(change)}: {change.detail}" for change in self.breaking]
        return lines + [f"drift: {failure}" for failure in self.drift_failures]

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary printed by `saliency-export diff`."""
        grouped: dict[str, list[dict[str, str]]] = {kind: [] for kind in (BREAKING, COMPATIBLE, ADDED)}
        for change in self.changes:
            grouped[change.kind].append({"where": _where(change), "detail": change.detail})
        return {
            "command": "diff",
            "old": self.old,
            "new": self.new,
            "passed": self.passed,
            "failures": self.failures,
            "seconds": round(self.seconds, 2),
            "contract": grouped,
            "drift": dict(self.drift),
            "thresholds": dataclasses.asdict(self.thresholds),
        }


def _where(change: ContractChange) -> str:
    return change.signature if change.tensor is None else f"{change.signature}/{change.tensor}"


# --- (a) contract ------------------------------------------------------------------------------


def _describe(info: Mapping[str, Any]) -> str:
    shape = "unknown rank" if info["shape"] is None else str(info["shape"]).replace(" ", "")
    return f"{info['dtype']} {shape}"


def _shape_kind(old: list[int] | None, new: list[int] | None, is_input: bool, class_axis_ok: bool) -> tuple[str, str]:
    """(kind, why) for one tensor's shape, old → new."""
    if old == new:
        return COMPATIBLE, ""
    if new is None:
        return (COMPATIBLE, "now accepts any shape") if is_input else (BREAKING, "output shape no longer known")
    if old is None:
        return BREAKING, f"shape now fixed to {new}"
    if len(old) != len(new):
        return BREAKING, f"rank {len(old)} → {len(new)}"
    if new and new[0] != -1:
        return BREAKING, f"batch dimension is no longer dynamic ({new[0]})"
    notes = []
    for axis, (before, after) in enumerate(zip(old, new, strict=True)):
        if axis == 0 or before == after:
            continue
        if is_input and after == -1:
            notes.append(f"dimension {axis} becomes dynamic")
        elif not is_input and axis == len(old) - 1 and class_axis_ok:
            notes.append(f"class count {before} → {after} (documented class-names change)")
        else:
            return BREAKING, f"dimension {axis}: {before} → {after}"
    return COMPATIBLE, "; ".join(notes) or "batch dimension becomes dynamic"


def _classes(report: ExportReport) -> list[str] | None:
    names = report.export.class_names
    return list(names) if names else None


def compare_contracts(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    old_classes: Sequence[str] | None = None,
    new_classes: Sequence[str] | None = None,
    allow_class_change: bool = False,
) -> list[ContractChange]:
    """Classifies every signature and tensor of `old` against `new` (and what `new` adds).

    Args:
        old: `exporter._report.signature_specs` of the version clients use.
        new: The same of the candidate.
        old_classes: OLD's class names, if recorded.
        new_classes: NEW's class names, if recorded.
        allow_class_change: Accept a changed class list (count or names) when both
            versions record their class names.

    Returns:
        The changes, OLD's signatures in order, then NEW's additions.
    """
    changes: list[ContractChange] = []
    documented = allow_class_change and old_classes is not None and new_classes is not None
    if old_classes is not None and new_classes is not None and list(old_classes) != list(new_classes):
        detail = f"class names {list(old_classes)} → {list(new_classes)}"
        changes.append(
            ContractChange(COMPATIBLE if documented else BREAKING, "*", "class_names",
                           detail + ("" if documented else "; class indices change meaning (pass --allow-class-change if intended)"))
        )
    for name, before in old.items():
        if name not in new:
            changes.append(ContractChange(BREAKING, name, None, f"signature dropped (NEW has {sorted(new)})"))
            continue
        after = new[name]
        if before["method_name"] != after["method_name"]:
            changes.append(ContractChange(BREAKING, name, None, f"method_name {before['method_name']} → {after['method_name']}"))
        for side in ("inputs", "outputs"):
            is_input = side == "inputs"
            for alias, info in before[side].items():
                where = f"{side}/{alias}"
                if alias not in after[side]:
                    changes.append(ContractChange(BREAKING, name, where, f"{alias} dropped (NEW has {sorted(after[side])})"))
                    continue
                other = after[side][alias]
                if info["dtype"] != other["dtype"]:
                    changes.append(ContractChange(BREAKING, name, where, f"dtype {info['dtype']} → {other['dtype']}"))
                    continue
                kind, why = _shape_kind(info["shape"], other["shape"], is_input, documented and alias in _CLASS_OUTPUTS)
                if kind == BREAKING and not is_input and alias in _CLASS_OUTPUTS and not documented:
                    why += " (a class-count change is accepted only with --allow-class-change and class_names in both reports)"
                if is_input and kind == COMPATIBLE:
                    had, has = before["defaults"].get(alias), after["defaults"].get(alias)
                    if had is not None and has is None:
                        kind, why = BREAKING, f"default {had} dropped: clients that omit {alias} now fail"
                    elif had is not None and had != has:
                        kind, why = BREAKING, f"default {had} → {has}: clients that omit {alias} get other answers"
                    elif had is None and has is not None:
                        why = f"now optional (default {has})"
                if info == other and not why:
                    text = f"unchanged: {_describe(info)}"
                else:
                    text = f"{_describe(info)} → {_describe(other)}" + (f": {why}" if why else "")
                changes.append(ContractChange(kind, name, where, text))
        for side in ("inputs", "outputs"):
            for alias in sorted(set(after[side]) - set(before[side])):
                where = f"{side}/{alias}"
                if side == "inputs" and alias not in after["defaults"]:
                    changes.append(ContractChange(BREAKING, name, where, f"new required input {_describe(after[side][alias])}: clients of OLD do not send it"))
                else:
                    changes.append(ContractChange(ADDED, name, where, _describe(after[side][alias])))
    for name in sorted(set(new) - set(old)):
        changes.append(ContractChange(ADDED, name, None, f"new signature ({', '.join(new[name]['inputs'])} → {', '.join(new[name]['outputs'])})"))
    return changes


# --- (b) drift ---------------------------------------------------------------------------------


def load_reference_images(spec: str, report: ExportReport) -> np.ndarray:
    """Reference images as the old export's float model inputs [N,H,W,C].

    Args:
        spec: A `.npy` file of model inputs [N,H,W,C]; or image files (PNG/JPEG, comma-
            separated, or a directory of them), whose pixels are scaled as the export's
            `[input]` says (scale/offset for uint8 and image_bytes, 1/255 for float32).
        report: The old export's report (input shape and format).

    Raises:
        ConfigError: A missing file, or images of another size or channel count.
    """
    height, width, channels = report.model.input_shape
    shape = (height, width, channels)
    if spec.endswith(".npy"):
        from exporter.evaluation._data import load_images, prepare_images

        images = load_images(spec)
        return prepare_images(images, shape, len(images))
    from PIL import Image

    paths: list[Path] = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")))
        elif path.is_file():
            paths.append(path)
        else:
            raise ConfigError(f"--images: {item} is not a file or directory.")
    if not paths:
        raise ConfigError(f"--images {spec}: no PNG/JPEG images found.")
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(shape[2])
    if mode is None:
        raise ConfigError(f"Image files give 1, 3 or 4 channels; the model takes {shape[2]}: pass a .npy file.")
    cfg = input_config(report)
    scale = cfg.scale if cfg.scale is not None else 1.0 / 255.0
    offset = cfg.offset if cfg.offset is not None else 0.0
    loaded: list[np.ndarray] = []
    for path in paths:
        with Image.open(path) as image:
            if image.size != (shape[1], shape[0]):
                raise ConfigError(
                    f"--images {path}: expected {shape[1]}×{shape[0]} pixels (W×H), received "
                    f"{image.size[0]}×{image.size[1]}; resize the reference images to the model's input."
                )
            pixels = np.asarray(image.convert(mode), np.float32).reshape(shape)
        loaded.append(pixels * scale + offset)
    return np.stack(loaded).astype(np.float32)


def _drift_blocker(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """Why the same images cannot be fed to both versions' serving_default, or None."""
    if c.SERVING_DEFAULT not in old or c.SERVING_DEFAULT not in new:
        return "a version has no serving_default signature"
    before = old[c.SERVING_DEFAULT]["inputs"].get(c.IMAGES)
    after = new[c.SERVING_DEFAULT]["inputs"].get(c.IMAGES)
    if before is None or after is None or before["dtype"] != after["dtype"] or before["shape"] != after["shape"]:
        return "the images input differs between the versions (see the breaking changes)"
    return None


def _comparable_maps(old: Mapping[str, Any], new: Mapping[str, Any], name: str) -> bool:
    """Both versions have `name` as an explanation signature taking the same images."""
    if name not in new:
        return False
    sides = (old[name], new[name])
    return all(
        c.SALIENCY in s["outputs"] and c.TARGET_CLASS in s["inputs"] and c.IMAGES in s["inputs"] for s in sides
    ) and sides[0]["inputs"][c.IMAGES] == sides[1]["inputs"][c.IMAGES]


def _maps(saved: Any, signature: str, feed: np.ndarray, target: np.ndarray) -> np.ndarray:
    return saved.run(signature, {c.IMAGES: feed, c.TARGET_CLASS: target}, (c.SALIENCY,))[c.SALIENCY]


def measure_drift(
    old_dir: Path,
    new_dir: Path,
    images: np.ndarray,
    old_report: ExportReport,
    new_report: ExportReport,
    signatures: Sequence[str],
    thresholds: DriftThresholds,
) -> tuple[dict[str, Any], list[str]]:
    """Drift figures of NEW against OLD on `images`, and the threshold failures.

    Maps are compared for the same class, OLD's prediction, so a changed prediction
    does not count twice.
    """
    from exporter._inputs import encode_samples
    from exporter._tf1 import Tf1SavedModel
    from exporter.evaluation._metrics import spearman_abs, ssim

    old_feed, _ = encode_samples(images, input_config(old_report))
    new_feed, _ = encode_samples(images, input_config(new_report))
    failures: list[str] = []
    with Tf1SavedModel(old_dir) as old, Tf1SavedModel(new_dir) as new:
        before = old.run(c.SERVING_DEFAULT, {c.IMAGES: old_feed})
        after = new.run(c.SERVING_DEFAULT, {c.IMAGES: new_feed})
        figures: dict[str, Any] = {"images": len(images)}
        same_k = before[c.PROBABILITIES].shape[-1] == after[c.PROBABILITIES].shape[-1]
        if same_k:
            agreement = float(np.mean(before[c.PREDICTED_CLASS] == after[c.PREDICTED_CLASS]))
            shift = np.abs(before[c.PROBABILITIES].astype(np.float64) - after[c.PROBABILITIES]).max(axis=-1)
            figures.update(
                prediction_agreement=agreement,
                changed_predictions=int(np.sum(before[c.PREDICTED_CLASS] != after[c.PREDICTED_CLASS])),
                max_probability_shift=float(shift.max()),
                mean_probability_shift=float(shift.mean()),
            )
            if agreement < thresholds.min_agreement:
                failures.append(f"prediction agreement {agreement:.3f} < {thresholds.min_agreement}")
            if shift.max() > thresholds.max_probability_shift:
                failures.append(f"max probability shift {shift.max():.3g} > {thresholds.max_probability_shift}")
        else:
            figures["predictions"] = "not compared: the class count changed"
        target = before[c.PREDICTED_CLASS].astype(np.int32)
        k_new = after[c.PROBABILITIES].shape[-1]
        keep = target < k_new
        maps: dict[str, Any] = {}
        for name in signatures:
            if not keep.any():
                break
            a = _maps(old, name, old_feed[keep], target[keep])
            b = _maps(new, name, new_feed[keep], target[keep])
            dissimilarity = np.array([1.0 - ssim(x, y, data_range=1.0) for x, y in zip(a, b, strict=True)])
            spearman = np.array([spearman_abs(x, y) for x, y in zip(a, b, strict=True)])
            maps[name] = {
                "mean_dissimilarity": float(dissimilarity.mean()),
                "max_dissimilarity": float(dissimilarity.max()),
                "mean_spearman": float(spearman.mean()),
                "min_spearman": float(spearman.min()),
                "max_abs_diff": float(np.abs(a.astype(np.float64) - b).max()),
            }
            if dissimilarity.mean() > thresholds.max_mean_dissimilarity:
                failures.append(f"{name}: mean 1 − SSIM {dissimilarity.mean():.3f} > {thresholds.max_mean_dissimilarity}")
            if dissimilarity.max() > thresholds.max_dissimilarity:
                failures.append(f"{name}: max 1 − SSIM {dissimilarity.max():.3f} > {thresholds.max_dissimilarity}")
            if spearman.mean() < thresholds.min_mean_spearman:
                failures.append(f"{name}: mean Spearman {spearman.mean():.3f} < {thresholds.min_mean_spearman}")
        figures["saliency"] = maps
    return figures, failures


def _report(export_dir: Path) -> ExportReport:
    try:
        return read_report(export_dir)
    except ReportError as error:
        raise ConfigError(str(error)) from None


def diff_versions(
    old_dir: str | Path,
    new_dir: str | Path,
    *,
    images: str | np.ndarray | None = None,
    num_images: int | None = None,
    allow_class_change: bool = False,
    thresholds: DriftThresholds | None = None,
    signatures: Sequence[str] | None = None,
) -> DiffResult:
    """Compares NEW with OLD: contract compatibility for OLD's clients, and behaviour drift.

    Args:
        old_dir: The version clients use now (`BASE/<version>`).
        new_dir: The candidate version.
        images: Reference images: float model inputs [N,H,W,C], or a spec for
            `load_reference_images`; by default `num_images` samples drawn with the old
            report's verification settings (its first ones are its verification samples).
        num_images: At most this many images (default 16 drawn; all given ones).
        allow_class_change: A changed class list is a documented change, not breaking.
        thresholds: When drift fails (`DriftThresholds()` by default).
        signatures: Explanation signatures to compare (default: every one both have).

    Returns:
        The `DiffResult` (`.passed`, `.failures`, `.to_dict()`).

    Raises:
        ConfigError: A directory that is not an export, unreadable images, or an
            unknown signature in `signatures`.
    """
    from exporter._report import signature_specs

    start = time.perf_counter()
    old_dir, new_dir = Path(old_dir), Path(new_dir)
    thresholds = thresholds or DriftThresholds()
    old_report, new_report = _report(old_dir), _report(new_dir)
    old_specs, new_specs = signature_specs(old_dir), signature_specs(new_dir)
    changes = compare_contracts(
        old_specs,
        new_specs,
        old_classes=_classes(old_report),
        new_classes=_classes(new_report),
        allow_class_change=allow_class_change,
    )
    shared = [n for n in old_specs if _comparable_maps(old_specs, new_specs, n)]
    if signatures is not None:
        unknown = sorted(set(signatures) - set(shared))
        if unknown:
            raise ConfigError(f"--signatures {unknown}: not explanation signatures of both versions; shared ones: {shared}.")
        shared = list(signatures)
    blocker = _drift_blocker(old_specs, new_specs)
    drift_failures: list[str] = []
    if blocker is not None:
        drift: dict[str, Any] = {"skipped": blocker}
    else:
        if images is None:
            count = num_images or DEFAULT_NUM_IMAGES
            verification = dataclasses.replace(
                old_report.verification, settings={**old_report.verification.settings, "num_samples": count}
            )
            settings = dataclasses.replace(old_report, verification=verification)
            reference, source = reference_samples(settings), "the old report's verification settings"
        elif isinstance(images, str):
            reference, source = load_reference_images(images, old_report), images
        else:
            reference, source = np.asarray(images, np.float32), "given array"
        if num_images is not None:
            reference = reference[:num_images]
        drift, drift_failures = measure_drift(old_dir, new_dir, reference, old_report, new_report, shared, thresholds)
        drift = {"source": source, **drift}
    return DiffResult(
        str(old_dir), str(new_dir), tuple(changes), drift, tuple(drift_failures), thresholds, time.perf_counter() - start
    )
