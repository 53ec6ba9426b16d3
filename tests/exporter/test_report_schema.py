"""The typed report schema accepts every field the exporter writes, on a real export."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from exporter import (
    ExportConfig,
    InputConfig,
    IntegratedGradientsParams,
    MethodsConfig,
    SaliencyExporter,
    SmoothGradParams,
)
from exporter import methods as registry
from exporter.methods import BlurIntegratedGradientsParams, GuidedIntegratedGradientsParams
from exporter.methods.xrai import XraiParams
from serving_client import contract
from serving_client.report import REPORT_FIELDS, parse_report, read_report

pytestmark = pytest.mark.integration


def _rgb_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(2, 3, activation="tanh", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, dict]:
    # Every registered method and the image_bytes format, so every optional part is written.
    config = ExportConfig(
        name="schema",
        class_names=("a", "b", "c"),
        input=InputConfig(format=contract.IMAGE_BYTES),
        methods=MethodsConfig(
            enabled=registry.names(),
            params=[
                SmoothGradParams(samples=2),
                IntegratedGradientsParams(steps=4),
                # Few steps: each is verified against its slow eager reference.
                BlurIntegratedGradientsParams(steps=4),
                GuidedIntegratedGradientsParams(steps=4),
                XraiParams(steps=4),
            ],
        ),
    )
    result = SaliencyExporter(_rgb_model(), config).write(tmp_path_factory.mktemp("schema"))
    return result.path, result.report


def test_every_field_the_writer_emits_is_in_the_schema(exported):
    path, written = exported
    report = read_report(path)
    assert report.unknown_fields() == []
    # Every section the writer emitted is one the schema names, and the typed parts read it.
    assert set(written) <= set(REPORT_FIELDS)
    assert report.model.input_shape == (6, 6, 3) and report.model.num_classes == 3
    assert report.export.input_format == contract.IMAGE_BYTES
    assert report.export.class_names == ("a", "b", "c")
    assert report.limits is not None and report.limits.max_pixels is not None
    assert report.limits.max_image_bytes is not None
    assert report.export_files is not None and len(report.export_files.sha256) == 64


def test_the_signatures_recorded_follow_the_naming_rule(exported):
    path, _ = exported
    report = read_report(path)
    methods = contract.methods_of_signatures(report.signatures)
    assert set(methods) == set(registry.names())
    explain = report.signatures[contract.EXPLAIN]
    assert explain.inputs[contract.IMAGES].dtype == contract.DataType.DT_STRING.name
    assert set(report.limits.signatures) == set(report.signatures)


def test_the_report_in_memory_and_on_disk_type_alike(exported):
    path, written = exported
    on_disk, in_memory = read_report(path), parse_report(written)
    assert on_disk.model == in_memory.model
    assert on_disk.export == in_memory.export
    assert on_disk.limits == in_memory.limits
