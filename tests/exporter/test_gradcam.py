"""`explain_gradcam`: localization on a model whose class evidence is known, the eager
reference on every kind of logits head, the spatial-layer choice and its errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from exporter import ExportConfig, SaliencyExporter, Tf1SavedModel, UnsupportedModelError, methods
from exporter._config import MethodsConfig, config_from_mapping
from exporter._reference import LogitsCopy
from exporter.methods import GradCamParams
from tests.exporter.helpers import (
    INPUT_SHAPE,
    export,
    fused_softmax_model,
    samples,
    sequential_bn_model,
    sigmoid_model,
    softmax_layer_model,
)

pytestmark = pytest.mark.integration

GRADCAM = ExportConfig(methods=MethodsConfig(enabled=("gradcam",)))
SIZE = 16


def blob_model() -> keras.Model:
    """Class 1 = "a bright blob is present", with hand-set weights.

    Channel 0 fires on bright 3×3 patches, channel 1 on dark ones; global average pooling
    and a fused-softmax head: logit_1 = 60·mean(bright) − 2·mean(dark), logit_0 = −logit_1.
    So the evidence for class 1 lies exactly where the blob is.
    """
    inputs = keras.Input((SIZE, SIZE, 1))
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="detectors")
    x = conv(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    head = keras.layers.Dense(2, activation="softmax", name="head")
    model = keras.Model(inputs, head(x))
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    kernel[..., 0, 0], kernel[..., 0, 1] = 1 / 9, -1 / 9
    conv.set_weights([kernel, np.array([-0.5, 0.4], np.float32)])
    head.set_weights([np.array([[-60.0, 60.0], [2.0, -2.0]], np.float32), np.zeros(2, np.float32)])
    return model


def blob_images(n: int, quadrant: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Dim noise in [0, 0.3] with a bright 5×5 blob at a random place inside `quadrant`."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.3, (n, SIZE, SIZE, 1)).astype(np.float32)
    half = SIZE // 2
    for image in images:
        top = quadrant[0] * half + rng.integers(1, half - 5)
        left = quadrant[1] * half + rng.integers(1, half - 5)
        image[top : top + 5, left : left + 5] = 1.0
    return images


def quadrant_margin(maps: np.ndarray, quadrant: tuple[int, int]) -> np.ndarray:
    """Mean map value inside `quadrant` minus the mean over the other three, per map."""
    half = SIZE // 2
    mask = np.zeros((SIZE, SIZE), bool)
    mask[quadrant[0] * half : (quadrant[0] + 1) * half, quadrant[1] * half : (quadrant[1] + 1) * half] = True
    return maps[:, mask].mean(axis=1) - maps[:, ~mask].mean(axis=1)


@pytest.fixture(scope="module")
def blob_saved(tmp_path_factory):
    model = blob_model()
    path = export(model, tmp_path_factory.mktemp("blob"), GRADCAM, samples=blob_images(4, (0, 0), seed=5))
    with Tf1SavedModel(path) as saved:
        yield model, path, saved


def test_gradcam_lights_the_quadrant_holding_the_class_evidence(blob_saved):
    _, _, saved = blob_saved
    for quadrant in ((0, 0), (1, 1)):
        x = blob_images(8, quadrant, seed=1)
        out = saved.run("explain_gradcam", {"images": x, "target_class": np.array([1], np.int32)})
        assert out["saliency"].shape == (8, SIZE, SIZE)
        assert out["saliency"].min() >= 0 and out["saliency"].max() <= 1
        np.testing.assert_array_equal(out["predicted_class"], np.ones(8))
        # The 5×5 blob covers ~40 % of its 8×8 quadrant; the map peaks at 1 on it and is 0
        # on the background: mean inside − mean outside was 0.217–0.234 over 8 images.
        assert quadrant_margin(out["saliency"], quadrant).min() > 0.15
        outside = out["saliency"].copy()
        outside[:, quadrant[0] * 8 : quadrant[0] * 8 + 8, quadrant[1] * 8 : quadrant[1] * 8 + 8] = 0
        assert outside.mean() < 0.02


def test_gradcam_for_the_other_class_lights_the_dark_background(blob_saved):
    _, _, saved = blob_saved
    x = blob_images(4, (0, 0), seed=2)
    out = saved.run("explain_gradcam", {"images": x, "target_class": np.array([0], np.int32)})
    assert (quadrant_margin(out["saliency"], (0, 0)) < 0).all()


def test_gradcam_signature_def_and_the_report(blob_saved):
    _, path, _ = blob_saved
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    sig = saved_model.meta_graphs[0].signature_def["explain_gradcam"]
    f, i = tf.float32.as_datatype_enum, tf.int32.as_datatype_enum
    spec = lambda infos: {  # noqa: E731  (None: unknown rank, target_class [batch] or [batch, K])
        a: (x.dtype, None if x.tensor_shape.unknown_rank else [d.size for d in x.tensor_shape.dim]) for a, x in infos.items()
    }
    assert spec(sig.inputs) == {"images": (f, [-1, SIZE, SIZE, 1]), "target_class": (i, None)}
    assert spec(sig.outputs) == {
        "logits": (f, [-1, 2]),
        "probabilities": (f, [-1, 2]),
        "predicted_class": (i, [-1]),
        "target_class": (i, None),
        "saliency": (f, None),
    }
    np.testing.assert_array_equal(tf.make_ndarray(sig.defaults["target_class"]), [-1])
    import json

    report = json.loads((path / "assets.extra" / "export_report.json").read_text())
    assert set(report["verification"]["methods"]) == {"explain_gradcam"}


@pytest.mark.parametrize(
    "build",
    [fused_softmax_model, softmax_layer_model, sigmoid_model, sequential_bn_model],
    ids=["fused_softmax", "softmax_layer", "sigmoid_binary", "sequential_bn"],
)
def test_gradcam_matches_the_eager_reference_on_each_head(tmp_path, build):
    model = build()
    path = export(model, tmp_path, GRADCAM)
    layer = SaliencyExporter(model, GRADCAM).method_views["gradcam"].layer_name
    copy, x = LogitsCopy.of(model), samples(4, seed=3)
    with Tf1SavedModel(path) as saved:
        for target in (None, np.array([1], np.int32)):
            feed = {"images": x} if target is None else {"images": x, "target_class": target}
            out, ref = saved.run("explain_gradcam", feed), methods.get("gradcam").reference(
                copy, x, target, "max_abs", GradCamParams(layer=layer)
            )
            np.testing.assert_array_equal(out["target_class"], ref["target_class"])
            np.testing.assert_allclose(out["logits"], ref["logits"], atol=1e-5)
            np.testing.assert_allclose(out["saliency"], ref["saliency"], atol=1e-5)
            # The same logits as every other signature.
            np.testing.assert_allclose(out["logits"], saved.run("explain", feed)["logits"], atol=1e-6)


def test_the_last_spatial_layer_is_found_and_a_named_one_is_used():
    model = blob_model()
    assert SaliencyExporter(model, GRADCAM).method_views["gradcam"].layer_name == "detectors"
    # Sequential BN model: BatchNormalization is the last [B,h,w,k] layer before Flatten.
    bn = SaliencyExporter(sequential_bn_model(), GRADCAM)
    assert bn.method_views["gradcam"].layer_name.startswith("batch_normalization")
    # The resolved layer is what verification's reference explains.
    assert bn.methods.params_of("gradcam").layer == bn.method_views["gradcam"].layer_name
    config = config_from_mapping({"methods": {"enabled": ["gradcam"], "gradcam": {"layer": "conv"}}})
    assert config.methods.params_of("gradcam").layer == "conv"
    assert SaliencyExporter(fused_softmax_model(), config).method_views["gradcam"].layer_name == "conv"


def test_models_without_a_spatial_layer_are_refused_naming_the_layers():
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Flatten(name="flat")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))
    with pytest.raises(UnsupportedModelError, match=r"needs a spatial layer.*'flat'.*'head'"):
        SaliencyExporter(model, GRADCAM)
    # Without gradcam the same model exports as before.
    assert "explain_gradcam" not in SaliencyExporter(model).signatures


@pytest.mark.parametrize(
    ("layer", "needle"),
    [("nope", r"'nope' is not a layer.*spatial layers are: 'conv'"), ("head", r"'head' does not output")],
)
def test_a_bad_named_layer_is_refused(layer, needle):
    config = ExportConfig(methods=GRADCAM.methods.replace_params(GradCamParams(layer=layer)))
    with pytest.raises(UnsupportedModelError, match=needle):
        SaliencyExporter(fused_softmax_model(), config)


def test_cli_gradcam_flags(tmp_path):
    from exporter.cli import main

    model_path = tmp_path / "m.keras"
    fused_softmax_model().save(model_path)
    out = tmp_path / "out"
    assert main(["--model", str(model_path), "--output", str(out), "-q", "--methods", "gradcam", "--gradcam-layer", "conv"]) == 0
    with Tf1SavedModel(out / "1") as saved:
        assert saved.run("explain_gradcam", {"images": samples(2)})["saliency"].shape == (2, *INPUT_SHAPE[:2])
    assert main(["--model", str(model_path), "--output", str(out), "-q", "--methods", "gradcam", "--gradcam-layer", "head"]) == 1
