"""saliency-client's Vertex drawing flags and `compare` over gRPC, against the bundled server on a
real export with the path methods (Blur IG, Guided IG, and XRAI when the tree registers it)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image

from exporter import ExportConfig, export_model
from exporter import methods as _methods
from exporter._config import MethodsConfig, VerificationConfig
from exporter.methods import (
    BlurIntegratedGradientsParams,
    GuidedIntegratedGradientsParams,
    IntegratedGradientsParams,
)
from model_server import ModelServer, ServerOptions
from serving_client import ServingClient, render
from serving_client.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SHAPE = (16, 16, 1)
HAS_XRAI = "xrai" in _methods.names()
# The client's order: vanilla first, then by signature name.
METHODS = tuple(
    ["vanilla"]
    + sorted(
        ["integrated_gradients", "blur_integrated_gradients", "guided_integrated_gradients"]
        + (["xrai"] if HAS_XRAI else [])
    )
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    keras.utils.set_random_seed(5)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(3, 3, activation="tanh")(inputs)
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(x))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    params = [
        IntegratedGradientsParams(steps=8),
        BlurIntegratedGradientsParams(steps=8, max_sigma=4.0),
        GuidedIntegratedGradientsParams(steps=8),
    ]
    if HAS_XRAI:
        params.append(_methods.get("xrai").params_type(steps=8))
    base = tmp_path_factory.mktemp("vertex") / "clf"
    config = ExportConfig(
        name="clf",
        warmup_batch_sizes=(1,),
        methods=MethodsConfig(enabled=METHODS, params=params),
        verification=VerificationConfig(num_samples=2, fd_positions=2),  # kept small: 5 methods
    )
    export_model(model, base, config=config)
    options = ServerOptions.single_model("clf", base, port=0, rest_api_port=0)
    with ModelServer(options) as server:
        yield f"127.0.0.1:{server.ports.grpc}"


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "x.npy"
    pixels = np.zeros(SHAPE, np.float32)
    pixels[3:11, 4:12] = np.random.default_rng(2).uniform(0.5, 1.0, (8, 8, 1))
    np.save(path, pixels)
    return path, pixels


def test_compare_shows_every_method_the_export_offers_including_the_new_ones(served, image, tmp_path, capsys):
    path, _ = image
    code = main(["compare", str(path), "--server", served, "--model", "clf", "--timeout", "120",
                 "--out", str(tmp_path / "out"), "--scale", "2"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert tuple(line.split("\t")[0] for line in lines[:-1]) == METHODS
    for line, method in zip(lines[:-1], METHODS, strict=True):
        expected = "explain" if method == "vanilla" else f"explain_{method}"
        assert f"signature={expected}\t" in line
    grid = np.asarray(Image.open(lines[-1].removeprefix("grid=")))
    # One column per method plus the input, each at least the 32-pixel upscaled cell.
    assert grid.shape[1] >= (len(METHODS) + 1) * 32


def test_vertex_flags_reach_the_renderer_over_grpc(served, image, tmp_path, capsys):
    path, pixels = image
    flags = ["--visualization-type", "OUTLINES", "--polarity", "both", "--color-map", "red_green",
             "--clip-percent-lowerbound", "60", "--clip-percent-upperbound", "99", "--overlay-type", "GRAYSCALE"]  # fmt: skip
    code = main(["explain", str(path), "--server", served, "--model", "clf", "--timeout", "120",
                 "--method", "integrated_gradients", "--out", str(tmp_path / "out"), *flags])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    written = captured.out.strip().split("overlay=")[1]
    with ServingClient(served, "clf", timeout=120) as client:
        explanation = client.explain(pixels[None], method="integrated_gradients")
    expected = render.overlay(
        pixels, render.signed_map(explanation.attributions[0]), colormap="red_green",
        clip_percentiles=(60, 99), polarity="both", overlay_type="grayscale", visualization_type="outlines",
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(Image.open(written)), expected)
    assert render.outline(np.abs(render.scale_map(
        render.signed_map(explanation.attributions[0]), polarity="both", clip_percentiles=(60, 99))) > 0).any()

    # The same through a Vertex visualization file, an explicit flag overriding one field.
    block = tmp_path / "vis.json"
    block.write_text(json.dumps({"visualization": {"type": "OUTLINES", "polarity": "both", "colorMap": "RED_GREEN",
                                                   "clipPercentLowerbound": 60, "clipPercentUpperbound": 99,
                                                   "overlayType": "ORIGINAL"}}))  # fmt: skip
    code = main(["explain", str(path), "--server", served, "--model", "clf", "--timeout", "120",
                 "--method", "integrated_gradients", "--out", str(tmp_path / "file"),
                 "--visualization", str(block), "--overlay-type", "grayscale"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    from_file = np.asarray(Image.open(captured.out.strip().split("overlay=")[1]))
    np.testing.assert_array_equal(from_file, expected)


def test_both_spellings_of_the_clip_bounds_are_a_usage_error(served, image, tmp_path, capsys):
    path, _ = image
    code = main(["explain", str(path), "--server", served, "--model", "clf", "--out", str(tmp_path),
                 "--clip-percentiles", "1,99", "--clip-percent-upperbound", "99"])  # fmt: skip
    assert code == 2
    assert "one spelling" in capsys.readouterr().err


def test_per_request_flags_reach_client_explain(served, image, tmp_path, capsys):
    path, pixels = image
    baseline_file = tmp_path / "baseline.npy"
    np.save(baseline_file, np.full(SHAPE, 0.25, np.float32))
    flags = ["--steps", "3", "--samples", "2", "--noise", "0.1", "--baseline", str(baseline_file)]
    code = main(["explain", str(path), "--server", served, "--model", "clf", "--timeout", "120",
                 "--method", "integrated_gradients", "--out", str(tmp_path / "out"), "--alpha", "1", *flags])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    written = np.asarray(Image.open(captured.out.strip().split("overlay=")[1]))
    with ServingClient(served, "clf", timeout=120) as client:
        asked = client.explain(pixels[None], method="integrated_gradients", steps=3, samples=2, noise=0.1,
                               baseline=np.full(SHAPE, 0.25, np.float32))  # fmt: skip
        default = client.explain(pixels[None], method="integrated_gradients")
    np.testing.assert_array_equal(written, render.overlay(pixels, asked.saliency[0], alpha=1.0))
    assert not np.allclose(asked.attributions, default.attributions)  # the flags changed the answer
    # A method without the parameter is refused by the client, naming it (exit 1, nothing drawn).
    code = main(["explain", str(path), "--server", served, "--model", "clf", "--method", "vanilla",
                 "--out", str(tmp_path / "no"), "--steps", "3"])  # fmt: skip
    assert code == 1
    assert "steps" in capsys.readouterr().err
