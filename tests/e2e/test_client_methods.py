"""serving_client's methods against the bundled server serving a real export with several methods."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from exporter import ExportConfig, Tf1SavedModel, export_model
from exporter._config import MethodsConfig
from exporter.methods import IntegratedGradientsParams, SmoothGradParams
from model_server import ModelServer, ServerOptions
from serving_client import ServingClient
from serving_client.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SHAPE = (12, 12, 1)
# In the order the client lists an export's methods: vanilla first, then by signature name.
METHODS = ("vanilla", "gradient_x_input", "integrated_gradients", "smoothgrad")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    keras.utils.set_random_seed(3)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(x))
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))
    base = tmp_path_factory.mktemp("methods") / "clf"
    config = ExportConfig(
        name="clf",
        warmup_batch_sizes=(1,),
        methods=MethodsConfig(
            enabled=METHODS, params=[SmoothGradParams(samples=4), IntegratedGradientsParams(steps=16)]
        ),
    )
    path = export_model(model, base, config=config)
    options = ServerOptions.single_model("clf", base, port=0, rest_api_port=0)
    with ModelServer(options) as server:
        yield f"127.0.0.1:{server.ports.grpc}", path


def test_every_method_over_grpc_equals_its_signature_in_process(served):
    target, path = served
    x = np.random.default_rng(0).random((3, *SHAPE), dtype=np.float32)
    with ServingClient(target, "clf", timeout=60.0) as client, Tf1SavedModel(path) as saved:
        assert client.methods() == METHODS
        for method in METHODS:
            remote = client.explain(x, method=method)
            local = saved.run(remote.signature_name, {"images": x})
            np.testing.assert_allclose(remote.saliency, local["saliency"], atol=1e-6, err_msg=method)
            assert remote.method == method
        ig = client.explain(x, method="integrated_gradients")
        assert ig.attributions.shape == (3, *SHAPE)
        assert ig.approximation_error.shape == (3,)
        np.testing.assert_allclose(ig.attributions, local_ig := saved.run(
            "explain_integrated_gradients", {"images": x})["attributions"], atol=1e-6)
        assert local_ig.dtype == np.float32


def test_compare_cli_writes_the_grid_of_every_exported_method(served, tmp_path, capsys):
    target, _ = served
    image = tmp_path / "digit.npy"
    np.save(image, np.random.default_rng(1).random(SHAPE, dtype=np.float32))
    code = main(["compare", str(image), "--server", target, "--model", "clf", "--timeout", "60",
                 "--out", str(tmp_path / "out"), "--scale", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines[:-1]] == list(METHODS)
    predicted = {line.split("predicted=")[1].split("\t")[0] for line in lines[:-1]}
    assert len(predicted) == 1  # every method explains the same prediction
    grid = np.asarray(Image.open(lines[-1].removeprefix("grid=")))
    assert grid.shape[1] >= 5 * 36 and grid.shape[0] > 36
