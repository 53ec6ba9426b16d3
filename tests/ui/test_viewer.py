"""The viewer in a real browser: upload a digit, the map on the page is the client's ``render``.

The reference is computed apart from the viewer: the test reads the same PNG with
``render.load_image``, asks the bundled server with ``ServingClient`` and draws with
``render.overlay``; the page's pixels (decoded by Chromium) and its download must be equal.
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from serving_client import ServingClient, render
from tests.ui.conftest import (
    CLASS_NAMES,
    METHODS,
    MODEL,
    SHAPE,
    image_pixels,
    screenshot,
    start_viewer,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.usefixtures("browser_available")]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def digit(tmp_path_factory) -> str:
    """A hand-drawn 7 on black, as MNIST digits are, saved as an RGB PNG (the model is gray)."""
    picture = Image.new("RGB", SHAPE[:2], "black")
    draw = ImageDraw.Draw(picture)
    draw.line([(6, 6), (21, 6), (12, 23)], fill="white", width=3)
    path = tmp_path_factory.mktemp("digits") / "seven.png"
    picture.save(path)
    return str(path)


def expected_overlay(target, path, *, method="vanilla", target_class=None, **options) -> tuple:
    """What ``saliency-client`` draws for ``path``: client.explain, then render.overlay."""
    image = render.load_image(path, expected_shape=SHAPE)
    with ServingClient(target, MODEL, timeout=60.0) as client:
        explanation = client.explain(image[np.newaxis], target_class, method=method)
    polarity = options.get("polarity", "positive")
    values = explanation.saliency[0] if polarity == "positive" else render.signed_map(explanation.attributions[0])
    picture = render.overlay(
        image,
        values,
        colormap=options.get("colormap"),
        alpha=options.get("alpha", 0.5),
        clip_percentiles=options.get("clip_percentiles", (0.0, 100.0)),
        polarity=polarity,
        overlay_type=options.get("overlay_type", "original"),
    )
    return picture, explanation


def open_viewer(page, viewer):
    page.goto(viewer.url)
    page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#method').options.length > 0", timeout=TIMEOUT_MS)


def upload(page, *paths: str) -> None:
    page.set_input_files("#files", list(paths))


def wait_settled(page, name: str, state: str = "done"):
    card = f".card[data-filename='{name}']"
    page.wait_for_selector(f"{card}[data-state={state}]", timeout=TIMEOUT_MS)
    return card


def downloaded(page, selector: str) -> np.ndarray:
    href = page.get_attribute(selector, "href")
    assert href.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))).convert("RGB"))


def test_uploaded_digit_shows_the_map_render_draws(page, viewer, server, digit):
    open_viewer(page, viewer)
    assert page.text_content("#server") == server.grpc_target
    assert page.is_hidden("#banner")
    upload(page, digit)
    card = wait_settled(page, "seven.png")
    expected, explanation = expected_overlay(server.grpc_target, digit)
    shown = image_pixels(page, f"{card} figure.map[data-method=vanilla] img")
    np.testing.assert_array_equal(shown, expected)
    np.testing.assert_array_equal(downloaded(page, f"{card} figure.map a.download"), expected)
    assert page.get_attribute(f"{card} figure.map a.download", "download") == "seven_explain.png"
    # Top-k: the page lists the classes by name with the client's probabilities, target marked.
    rows = page.query_selector_all(f"{card} .classes button")
    order = np.argsort(-explanation.probabilities[0], kind="stable")[:5]
    assert [int(row.get_attribute("data-class")) for row in rows] == [int(k) for k in order]
    assert rows[0].inner_text().split("\n")[0].strip() == CLASS_NAMES[order[0]]
    predicted = int(explanation.predicted_class[0])
    assert page.get_attribute(f"{card} .classes button.target", "data-class") == str(predicted)

    # Other rendering options: the page re-draws, still equal to render for the same options.
    page.select_option("#colormap", "viridis")
    page.select_option("#overlay-type", "grayscale")
    page.fill("#clip-low", "10")
    page.fill("#clip-high", "99")
    page.fill("#alpha", "0.7")
    page.dispatch_event("#alpha", "change")
    page.wait_for_timeout(100)
    wait_settled(page, "seven.png")
    expected, _ = expected_overlay(
        server.grpc_target, digit, colormap="viridis", overlay_type="grayscale",
        clip_percentiles=(10.0, 99.0), alpha=0.7,
    )  # fmt: skip
    np.testing.assert_array_equal(image_pixels(page, f"{card} figure.map img"), expected)
    screenshot(page, "viewer-digit")


def test_switching_method_and_class_redraws_as_render(page, viewer, server, digit):
    open_viewer(page, viewer)
    upload(page, digit)
    card = wait_settled(page, "seven.png")
    page.select_option("#method", "integrated_gradients")
    page.select_option("#polarity", "both")
    page.wait_for_selector(f"{card} figure.map[data-method=integrated_gradients]", timeout=TIMEOUT_MS)
    wait_settled(page, "seven.png")
    expected, explanation = expected_overlay(
        server.grpc_target, digit, method="integrated_gradients", polarity="both"
    )
    np.testing.assert_array_equal(image_pixels(page, f"{card} figure.map img"), expected)
    caption = page.text_content(f"{card} figure.map figcaption")
    assert f"approximation error {100 * float(explanation.approximation_error[0]):.2f} %" in caption

    # Click the second most probable class: its map, drawn for that target class.
    second = page.query_selector_all(f"{card} .classes button")[1]
    target = int(second.get_attribute("data-class"))
    second.click()
    page.wait_for_selector(f"{card} figure.map[data-target-class='{target}']", timeout=TIMEOUT_MS)
    wait_settled(page, "seven.png")
    expected, explanation = expected_overlay(
        server.grpc_target, digit, method="integrated_gradients", polarity="both", target_class=target
    )
    assert int(explanation.target_class[0]) == target
    np.testing.assert_array_equal(image_pixels(page, f"{card} figure.map img"), expected)
    assert page.get_attribute(f"{card} .classes button.target", "data-class") == str(target)
    screenshot(page, "viewer-integrated-gradients-class")


def test_compare_shows_every_exported_method_side_by_side(page, viewer, server, digit):
    open_viewer(page, viewer)
    page.check("#compare")
    upload(page, digit)
    card = wait_settled(page, "seven.png")
    figures = page.query_selector_all(f"{card} figure.map")
    with ServingClient(server.grpc_target, MODEL) as client:
        offered = client.methods()
    assert sorted(offered) == sorted(METHODS)
    assert [figure.get_attribute("data-method") for figure in figures] == list(offered)
    for method in METHODS:
        expected, _ = expected_overlay(server.grpc_target, digit, method=method)
        shown = image_pixels(page, f"{card} figure.map[data-method={method}] img")
        np.testing.assert_array_equal(shown, expected, err_msg=method)
    screenshot(page, "viewer-compare")


def test_wrong_size_and_oversized_uploads_say_what_is_wrong(page, viewer, digit, tmp_path):
    small = tmp_path / "small.png"
    Image.new("L", (20, 16)).save(small)
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(noise)
    open_viewer(page, viewer)
    upload(page, str(small), str(noise), digit)
    wrong = wait_settled(page, "small.png", "error")
    assert page.text_content(f"{wrong} .error") == (
        "small.png is 20x16 pixels; model 'digits' takes 28x28 (width x height) images. "
        "Resize the picture to 28x28 and upload it again."
    )
    large = wait_settled(page, "noise.png", "error")
    megabytes = noise.stat().st_size / 2**20
    assert page.text_content(f"{large} .error") == (
        f"noise.png is {megabytes:.3g} MB; the viewer accepts uploads up to 0.05 MB "
        "(saliency-client ui --max-upload-mb)."
    )
    wait_settled(page, "seven.png")  # the other images of the batch are explained
    screenshot(page, "viewer-upload-errors")


def test_a_stopped_server_is_named_in_the_page(page, export, digit):
    from model_server._process import ServerProcess

    process = ServerProcess(MODEL, export.base, rest_api_port=0).start()
    viewer = start_viewer(process.grpc_target, "--model", MODEL, "--timeout", "3")
    try:
        open_viewer(page, viewer)
        upload(page, digit)
        wait_settled(page, "seven.png")
        process.stop()
        started = time.monotonic()
        page.click("#reload")
        page.wait_for_selector("#banner:not([hidden])", timeout=TIMEOUT_MS)
        banner = page.text_content("#banner")
        assert banner.startswith(f"Cannot reach the model server at {process.grpc_target} (UNAVAILABLE: ")
        assert banner.endswith("Is it running? Start it, then press Reload.")
        assert time.monotonic() - started < 30
        card = wait_settled(page, "seven.png", "error")
        assert page.text_content(f"{card} .error").startswith("No model loaded: Cannot reach")
        screenshot(page, "viewer-server-stopped")
    finally:
        viewer.stop()
        process.stop()


def test_a_model_without_explanation_signatures_is_named_in_the_page(page, tmp_path):
    """A plain Keras export (serving_default only) is served, but has nothing to explain."""
    import keras

    from model_server._process import ServerProcess

    inputs = keras.Input(SHAPE)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    model.export(str(tmp_path / "plain" / "1"), verbose=False)
    with ServerProcess("plain", tmp_path / "plain", rest_api_port=0) as process:
        viewer = start_viewer(process.grpc_target, "--model", "plain")
        try:
            assert page.goto(viewer.url).ok
            page.wait_for_selector("#banner:not([hidden])", timeout=TIMEOUT_MS)
            assert page.text_content("#banner") == (
                "Model 'plain' version 1 has no explanation signatures (it has serve, serving_default); "
                "export it with saliency-export to add explain signatures."
            )
            screenshot(page, "viewer-no-explanations")
        finally:
            viewer.stop()


def test_uploads_leave_no_file_behind(page, server, digit, tmp_path):
    """The viewer runs in an empty directory with an empty HOME and TMPDIR: they stay empty."""
    places = {name: tmp_path / name for name in ("cwd", "home", "tmp")}
    for place in places.values():
        place.mkdir()
    viewer = start_viewer(
        server.grpc_target, "--model", MODEL, cwd=places["cwd"],
        env={"HOME": str(places["home"]), "TMPDIR": str(places["tmp"]), "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    try:
        open_viewer(page, viewer)
        page.check("#compare")
        upload(page, digit)
        wait_settled(page, "seven.png")
    finally:
        viewer.stop()
    assert {name: sorted(place.rglob("*")) for name, place in places.items()} == {
        "cwd": [], "home": [], "tmp": [],
    }
