"""The viewer sends what each input format takes: uint8 pixels, or the uploaded file's bytes
for an ``image_bytes`` export (the graph decodes and resizes). Its map equals the one drawn
from ``ServingClient.explain`` on the same file, as ``saliency-client explain`` draws it."""

from __future__ import annotations

import base64
import io
import json
import textwrap
import urllib.request
from urllib.parse import urlencode

import numpy as np
import pytest
from PIL import Image, ImageDraw

from serving_client import ServingClient, render
from tests.ui.conftest import start_viewer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SHAPE = (16, 16, 1)


def export(tmp_path, name: str, input_format: str):
    import keras

    from exporter import export_model, load_config

    keras.utils.set_random_seed(1)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Flatten()(keras.layers.Conv2D(3, 3, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    config = tmp_path / f"{name}.toml"
    config.write_text(textwrap.dedent(f"""
        [model]
        name = "{name}"

        [input]
        format = "{input_format}"
        """))  # fmt: skip
    export_model(model, tmp_path / name, config=load_config(config))
    return tmp_path / name


def explain_over_http(url: str, model: str, path) -> dict:
    query = urlencode({"model": model, "method": "vanilla", "filename": path.name})
    request = urllib.request.Request(f"{url}api/explain?{query}", data=path.read_bytes(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - the local viewer
        return json.loads(response.read())


def overlay_of(answer: dict) -> np.ndarray:
    data = base64.b64decode(answer["overlay_png"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("input_format", ["uint8", "image_bytes"])
def test_the_map_of_each_input_format_equals_the_clients(tmp_path, input_format):
    from model_server._process import ServerProcess

    base = export(tmp_path, "fmt", input_format)
    picture = Image.new("RGB", (16, 16) if input_format == "uint8" else (40, 40), "black")
    ImageDraw.Draw(picture).ellipse((3, 3, picture.width - 4, picture.height - 4), outline="white", width=2)
    path = tmp_path / "ring.png"
    picture.save(path)
    with ServerProcess("fmt", base, rest_api_port=0) as server:
        viewer = start_viewer(server.grpc_target, "--model", "fmt")
        try:
            answer = explain_over_http(viewer.url, "fmt", path)
        finally:
            viewer.stop()
        with ServingClient(server.grpc_target, "fmt", timeout=60.0) as client:
            assert client.input_format() == input_format
            if input_format == "image_bytes":
                explanation = client.explain([str(path)])
                shown = render._resize(render.load_image(path), *explanation.saliency.shape[1:])
            else:
                shown = render.load_image(path, expected_shape=SHAPE)
                explanation = client.explain(np.rint(shown * 255.0).astype(np.uint8)[np.newaxis])
    expected = render.overlay(shown, explanation.saliency[0])
    assert answer["predicted_class"] == int(explanation.predicted_class[0])
    np.testing.assert_array_equal(overlay_of(answer), expected)
