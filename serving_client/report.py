"""The export report (``assets.extra/export_report.json``), typed, and its one reader.

The exporter writes the report (``exporter._report``); everything that reads it (``saliency-export
verify``, ``diff``, the compat matrix, the evaluation, the bundled server's limits) reads it with
:func:`read_report`, which checks the fields readers rely on once and names the file and the
field when one is missing or malformed. The parts readers use are typed frozen dataclasses; the
rest stays in :attr:`ExportReport.raw`, so a field added by a later exporter is kept, not lost.

TensorFlow-free, like the rest of ``serving_client``: a client or a tool may read a report
without importing TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .contract import FLOAT32, REPORT_ASSET

__all__ = [
    "REPORT_FIELDS",
    "ExportFiles",
    "ExportReport",
    "ExportSection",
    "LimitsSection",
    "LogitsInfo",
    "ModelSection",
    "ReportError",
    "SignatureLimit",
    "TensorEntry",
    "SignatureEntry",
    "VerificationSection",
    "read_report",
    "parse_report",
]

#: Every field the exporter writes, by section (``None``: the section's keys are open, e.g.
#: one per signature or per method). A test pins that a real export writes no field beyond
#: these, so a writer that adds one updates the schema here too.
REPORT_FIELDS: dict[str, frozenset[str] | None] = {
    "created_at": None,
    "tools": None,
    "export": frozenset(
        {
            "base_dir",
            "version",
            "path",
            "reduction",
            "input",
            "methods",
            "warmup_file",
            "warmup_batch_sizes",
            "class_names",
        }
    ),
    "model": frozenset(
        {
            "name",
            "source",
            "hash",
            "keras_input_shape",
            "keras_output_shape",
            "input_shape",
            "num_classes",
            "logits",
            # SavedModel sources only: what was read and how the original signature checked.
            "saved_model",
        }
    ),
    "signatures": None,
    "verification": None,
    "limits": frozenset({"memory_budget_mib", "max_images", "measurement", "signatures", "input"}),
    "export_files": frozenset({"sha256", "algorithm"}),
    "evaluation": None,
    # Rendering defaults imported from a Vertex ExplanationSpec (serving_client.visualization).
    "visualization": frozenset(
        {
            "type",
            "polarity",
            "color_map",
            "clip_percent_upperbound",
            "clip_percent_lowerbound",
            "overlay_type",
            "defaulted",
            "method",
            "source",
            "client_flags",
        }
    ),
}


class ReportError(ValueError):
    """An export report that is missing, not JSON, or lacks (or mistypes) a field readers need."""


@dataclasses.dataclass(frozen=True)
class ExportSection:
    """``export``: where and how the version was written.

    Attributes:
        reduction: how a saliency map is reduced over channels (e.g. ``"abs_max"``).
        input: the export's ``InputConfig`` fields (``format`` etc.); ``{}`` in reports that
            predate input formats (float32).
        methods: the export's methods config as written (``enabled`` and per-method tables).
        warmup_batch_sizes: the batch sizes of the warmup requests.
        version: the version number, when recorded.
        class_names: class labels, when configured.
    """

    reduction: str
    input: Mapping[str, Any]
    methods: Mapping[str, Any]
    warmup_batch_sizes: tuple[int, ...]
    version: int | None
    class_names: tuple[str, ...] | None

    @property
    def input_format(self) -> str:
        """The ``images`` input format (``float32`` for reports that predate formats)."""
        return str(self.input.get("format") or FLOAT32)


@dataclasses.dataclass(frozen=True)
class LogitsInfo:
    """``model.logits``: how the logits were found (``kind``) and from which layer, if any."""

    kind: str | None
    layer: str | None


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """``model``: what was exported.

    Attributes:
        input_shape: one image's ``(H, W, C)``.
        num_classes: the number of classes.
        name: the model's name in the export config.
        source: the model file, when exported from one.
        hash: the model's fingerprint.
        logits: how the logits were found.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    name: str | None
    source: str | None
    hash: str | None
    logits: LogitsInfo


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """One input or output of a recorded signature: its DataType name and shape (None: any rank)."""

    dtype: str
    shape: tuple[int, ...] | None


@dataclasses.dataclass(frozen=True)
class SignatureEntry:
    """One recorded SignatureDef, as TF Serving's metadata shows it."""

    method_name: str
    inputs: Mapping[str, TensorEntry]
    outputs: Mapping[str, TensorEntry]
    defaults: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class VerificationSection:
    """``verification``: the export's own checks; the figures stay in :attr:`raw`.

    Attributes:
        compute_dtype: the model's compute dtype (``float32`` for older reports).
        samples: how many samples were verified, when recorded.
        settings: the ``VerificationConfig`` used (``{}`` for older reports).
        raw: the whole section.
    """

    compute_dtype: str
    samples: int | None
    settings: Mapping[str, Any]
    raw: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class SignatureLimit:
    """``limits.signatures[name]``: the largest batch the signature's graph accepts."""

    max_batch: int


@dataclasses.dataclass(frozen=True)
class LimitsSection:
    """``limits``: what the graph refuses, per signature and (image_bytes) per image."""

    signatures: Mapping[str, SignatureLimit]
    max_pixels: int | None
    max_image_bytes: int | None


@dataclasses.dataclass(frozen=True)
class ExportFiles:
    """``export_files``: the hash of the published files (the report itself excluded)."""

    sha256: str
    algorithm: str


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """A version's export report: the typed parts readers use, and the whole as written.

    Attributes:
        path: the report file it was read from (``None`` when parsed from a dict).
        export, model, verification: the typed required sections.
        signatures: signature name → its recorded SignatureDef.
        limits: the request limits (``None`` in reports that predate them).
        export_files: the files' hash (``None`` in reports that predate it).
        raw: the whole report as JSON values.
    """

    path: Path | None
    export: ExportSection
    model: ModelSection
    signatures: Mapping[str, SignatureEntry]
    verification: VerificationSection
    limits: LimitsSection | None
    export_files: ExportFiles | None
    raw: Mapping[str, Any]

    @property
    def evaluation(self) -> Mapping[str, Any] | None:
        """The evaluation gate's result, when the export ran it."""
        return self.raw.get("evaluation")

    @property
    def visualization(self) -> Mapping[str, Any] | None:
        """The rendering defaults an imported Vertex spec recorded (``saliency-export
        --vertex-explanation-spec``): Vertex's visualization fields, snake_case, and the
        equivalent ``saliency-client`` flags (``client_flags``); None without one."""
        return self.raw.get("visualization")

    def unknown_fields(self) -> list[str]:
        """Fields of the report the schema (:data:`REPORT_FIELDS`) does not describe, dotted."""
        unknown: list[str] = []
        for key, value in self.raw.items():
            if key not in REPORT_FIELDS:
                unknown.append(key)
                continue
            allowed = REPORT_FIELDS[key]
            if allowed is not None and isinstance(value, Mapping):
                unknown.extend(f"{key}.{field}" for field in value if field not in allowed)
        return unknown


def read_report(version_dir: str | Path) -> ExportReport:
    """Read the export report of a version directory (``BASE/<version>``).

    Args:
        version_dir: the version directory; its report is ``assets.extra/export_report.json``.

    Returns:
        The typed report.

    Raises:
        ReportError: naming the file when it is missing, unreadable or not JSON, and the file and
            field when a field readers need is missing or of the wrong type.
    """
    path = Path(version_dir) / REPORT_ASSET
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(
            f"{path} is missing: {version_dir} is not a saliency-serving export version directory "
            "(expected BASE/<version> written by saliency-export, e.g. models/mnist/1)."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"{path} cannot be read: {error}.") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ReportError(f"{path} is not valid JSON: {error}.") from None
    return parse_report(data, path=path)


def parse_report(data: Any, *, path: Path | None = None) -> ExportReport:
    """Type a report already parsed from JSON (e.g. an ``ExportResult.report``).

    Args:
        data: the report as JSON values.
        path: where it came from, for messages.

    Returns:
        The typed report.

    Raises:
        ReportError: naming the field that is missing or of the wrong type.
    """
    where = str(path) if path is not None else "the export report"
    fields = _Fields(where)
    report = fields.mapping(data, "")
    export = fields.mapping(fields.required(report, "", "export"), "export")
    model = fields.mapping(fields.required(report, "", "model"), "model")
    verification = fields.mapping(fields.required(report, "", "verification"), "verification")
    signatures = fields.mapping(fields.required(report, "", "signatures"), "signatures")
    limits = report.get("limits")
    export_files = report.get("export_files")
    logits = fields.mapping(model.get("logits") or {}, "model.logits")
    class_names = export.get("class_names")
    return ExportReport(
        path=path,
        export=ExportSection(
            reduction=fields.string(fields.required(export, "export", "reduction"), "export.reduction"),
            input=fields.mapping(export.get("input") or {}, "export.input"),
            methods=fields.mapping(export.get("methods") or {}, "export.methods"),
            warmup_batch_sizes=tuple(
                fields.integer(b, "export.warmup_batch_sizes[]")
                for b in fields.sequence(export.get("warmup_batch_sizes") or [], "export.warmup_batch_sizes")
            ),
            version=fields.optional_integer(export.get("version"), "export.version"),
            class_names=None
            if class_names is None
            else tuple(str(n) for n in fields.sequence(class_names, "export.class_names")),
        ),
        model=ModelSection(
            input_shape=tuple(
                fields.integer(d, "model.input_shape[]")
                for d in fields.sequence(fields.required(model, "model", "input_shape"), "model.input_shape")
            ),
            num_classes=fields.integer(fields.required(model, "model", "num_classes"), "model.num_classes"),
            name=fields.optional_string(model.get("name"), "model.name"),
            source=fields.optional_string(model.get("source"), "model.source"),
            hash=fields.optional_string(model.get("hash"), "model.hash"),
            logits=LogitsInfo(
                kind=fields.optional_string(logits.get("kind"), "model.logits.kind"),
                layer=fields.optional_string(logits.get("layer"), "model.logits.layer"),
            ),
        ),
        signatures={name: fields.signature(spec, f"signatures.{name}") for name, spec in signatures.items()},
        verification=VerificationSection(
            compute_dtype=fields.string(verification.get("compute_dtype", FLOAT32), "verification.compute_dtype"),
            samples=fields.optional_integer(verification.get("samples"), "verification.samples"),
            settings=fields.mapping(verification.get("settings") or {}, "verification.settings"),
            raw=verification,
        ),
        limits=None if limits is None else fields.limits(limits),
        export_files=None
        if export_files is None
        else ExportFiles(
            sha256=fields.string(
                fields.required(fields.mapping(export_files, "export_files"), "export_files", "sha256"),
                "export_files.sha256",
            ),
            algorithm=fields.string(export_files.get("algorithm", ""), "export_files.algorithm"),
        ),
        raw=report,
    )


class _Fields:
    """Type checks of one report's fields, each naming the report and the dotted field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def _error(self, field: str, expected: str, value: Any) -> ReportError:
        name = field or "the report"
        return ReportError(f"{self.where}: {name} must be {expected}; got {value!r}.")

    def required(self, section: Mapping[str, Any], prefix: str, key: str) -> Any:
        if key not in section:
            field = f"{prefix}.{key}" if prefix else key
            raise ReportError(
                f"{self.where} lacks the field {field}; expected a report written by saliency-export."
            )
        return section[key]

    def mapping(self, value: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self._error(field, "a JSON object", value)
        return value

    def sequence(self, value: Any, field: str) -> list[Any]:
        if not isinstance(value, list):
            raise self._error(field, "a JSON list", value)
        return value

    def integer(self, value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(field, "an integer", value)
        return value

    def optional_integer(self, value: Any, field: str) -> int | None:
        return None if value is None else self.integer(value, field)

    def string(self, value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise self._error(field, "a string", value)
        return value

    def optional_string(self, value: Any, field: str) -> str | None:
        return None if value is None else self.string(value, field)

    def tensor(self, value: Any, field: str) -> TensorEntry:
        entry = self.mapping(value, field)
        shape = entry.get("shape")
        return TensorEntry(
            dtype=self.string(self.required(entry, field, "dtype"), f"{field}.dtype"),
            shape=None
            if shape is None
            else tuple(self.integer(d, f"{field}.shape[]") for d in self.sequence(shape, f"{field}.shape")),
        )

    def signature(self, value: Any, field: str) -> SignatureEntry:
        spec = self.mapping(value, field)
        inputs = self.mapping(spec.get("inputs") or {}, f"{field}.inputs")
        outputs = self.mapping(spec.get("outputs") or {}, f"{field}.outputs")
        return SignatureEntry(
            method_name=self.string(spec.get("method_name", ""), f"{field}.method_name"),
            inputs={a: self.tensor(t, f"{field}.inputs.{a}") for a, t in inputs.items()},
            outputs={a: self.tensor(t, f"{field}.outputs.{a}") for a, t in outputs.items()},
            defaults=self.mapping(spec.get("defaults") or {}, f"{field}.defaults"),
        )

    def limits(self, value: Any) -> LimitsSection:
        section = self.mapping(value, "limits")
        signatures = self.mapping(section.get("signatures") or {}, "limits.signatures")
        image = self.mapping(section.get("input") or {}, "limits.input")
        return LimitsSection(
            signatures={
                name: SignatureLimit(
                    max_batch=self.integer(
                        self.required(self.mapping(entry, f"limits.signatures.{name}"), f"limits.signatures.{name}", "max_batch"),
                        f"limits.signatures.{name}.max_batch",
                    )
                )
                for name, entry in signatures.items()
            },
            max_pixels=self.optional_integer(image.get("max_pixels"), "limits.input.max_pixels"),
            max_image_bytes=self.optional_integer(image.get("max_image_bytes"), "limits.input.max_image_bytes"),
        )
