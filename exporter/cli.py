"""`saliency-export`: the command-line face of `exporter.export_model`.

Prints progress on stderr and the published version directory as the last line of
stdout, so scripts can do `path=$(saliency-export ... | tail -1)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from exporter import ExportConfig, ExportError, _vertex, export_model, load_config
from exporter import methods as _methods
from exporter._cli import add_unsafe_flag, configure_logging, split_list, warn_if_unsafe
from exporter._loading import import_user_modules
from serving_client.contract import REPORT_ASSET

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="saliency-export",
        description="Export a Keras image classifier as a TF-Serving SavedModel with an "
        "'explain' (saliency) signature, verified before it is published.",
    )
    parser.add_argument(
        "--model", required=True, help="the .keras (or legacy .h5) model file, or a SavedModel directory"
    )
    parser.add_argument("--output", required=True, help="the model's base directory; writes OUTPUT/<version>/")
    parser.add_argument("--version", type=int, help="version number (default: next free integer)")
    parser.add_argument("--name", help="model name used in warmup requests and the report")
    parser.add_argument("--config", help="TOML export config (see configs/export.toml)")
    parser.add_argument(
        "--vertex-explanation-spec",
        metavar="FILE",
        help="a Vertex AI ExplanationSpec JSON: enables its method with its parameters (over "
        "--config's table for that method; a key both set differently is refused) and records "
        "its image visualization in the report (docs/vertex-migration.md)",
    )
    parser.add_argument("--report", help="also write the JSON export report to this file")
    parser.add_argument(
        "--report-html",
        metavar="FILE",
        help="also write the export report as a self-contained HTML page to this file",
    )
    parser.add_argument("--logits-layer", help="the layer whose output are the logits (overrides detection)")
    parser.add_argument("--signature", help="SavedModel directory: the signature to export (default serving_default)")
    parser.add_argument(
        "--logits-tensor",
        help="SavedModel directory: the graph tensor of the logits, e.g. 'StatefulPartitionedCall/…/BiasAdd:0' "
        "(default: the input of the Softmax/Sigmoid op that produces the signature's output)",
    )
    parser.add_argument(
        "--methods",
        help="comma-separated explanation methods to export (vanilla is always exported): "
        f"{','.join(_methods.names())}; overrides [methods] enabled",
    )
    parser.add_argument(
        "--input-format",
        choices=("float32", "uint8", "image_bytes"),
        help="what the signatures' `images` input takes: float32 [batch,H,W,C] (default), uint8 "
        "[batch,H,W,C] pixels or image_bytes (PNG/JPEG strings [batch]); overrides [input] format",
    )
    parser.add_argument(
        "--gradcam-layer",
        help="the spatial layer Grad-CAM explains (default: the last layer with a "
        "[batch, h, w, channels] output); overrides [methods.gradcam] layer",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="gate the export on the faithfulness checks (randomization test, deletion vs random "
        "order), on the images of [evaluation] data; sets [evaluation] enabled",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module (dotted name or .py file) before loading the model, so the "
        "custom layers it registers (keras.saving.register_keras_serializable, or a module-level "
        "custom_objects mapping) can be loaded; repeatable",
    )
    add_unsafe_flag(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="only print the result path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the process exit code (0 ok, 1 export error, 2 usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("verify", "diff"):  # the promotion gate: exporter/_gate_cli.py
        from exporter._gate_cli import main as gate_main

        return gate_main(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    source_options = {"signature": args.signature, "logits_tensor": args.logits_tensor}
    if any(source_options.values()) and not Path(args.model).is_dir():
        parser.error(f"--signature and --logits-tensor apply to a SavedModel directory; {args.model} is not one")
    configure_logging(args.quiet)
    imported = None
    try:
        config = load_config(args.config) if args.config else ExportConfig()
        if args.vertex_explanation_spec:
            imported = _vertex.load_explanation_spec(args.vertex_explanation_spec)
            raw = tomllib.loads(Path(args.config).read_text(encoding="utf-8")) if args.config else None
            config = _vertex.apply_to_config(config, imported, explicit=raw)
        overrides = {}
        if args.name:
            overrides["name"] = args.name
        if args.logits_layer:
            overrides["logits_layer"] = args.logits_layer
        if args.methods:
            enabled = tuple(split_list(args.methods) or ())
            if imported is not None:
                enabled = (*enabled, imported.method)  # the spec's method stays enabled
            overrides["methods"] = dataclasses.replace(config.methods, enabled=enabled)
        if args.input_format:
            overrides["input"] = dataclasses.replace(config.input, format=args.input_format)
        if args.gradcam_layer:
            methods = overrides.get("methods", config.methods)
            overrides["methods"] = methods.replace_params(
                dataclasses.replace(methods.params_of("gradcam"), layer=args.gradcam_layer)
            )
        if args.evaluate:
            overrides["evaluation"] = dataclasses.replace(config.evaluation, enabled=True)
        config = config.replace(**overrides) if overrides else config
        warn_if_unsafe(args, args.model)
        custom_objects = import_user_modules(args.imports)
        path = export_model(
            args.model,
            args.output,
            version=args.version,
            config=config,
            report_path=args.report,
            safe_mode=not args.unsafe_deserialization,
            source_options=source_options if Path(args.model).is_dir() else None,
            custom_objects=custom_objects or None,
        )
        if imported is not None:
            _report_vertex(imported, path, args)
    except ExportError as error:
        print(f"saliency-export: error: {error}", file=sys.stderr)
        return 1
    if args.report_html:
        from exporter.evaluation._html import export_report_html, write_html

        report = json.loads((Path(path) / REPORT_ASSET).read_text())
        write_html(export_report_html(report), args.report_html)
    print(path)
    return 0


def _report_vertex(imported: _vertex.VertexImport, path: Path | str, args: argparse.Namespace) -> None:
    """Record the spec's visualization in the report; say how to draw as Vertex did."""
    section = _vertex.record_visualization(path, imported, copies=(args.report,) if args.report else ())
    if args.quiet:
        return
    for note in imported.notes:
        print(f"saliency-export: vertex: {note}", file=sys.stderr)
    if section is not None or imported.class_flags:
        flags = " ".join([*(section["client_flags"] if section is not None else ()), *imported.class_flags])
        print(
            f"saliency-export: vertex: draw as Vertex did with: saliency-client explain "
            f"--method {imported.method} {flags}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
