"""examples.mnist.model: the layer recipe and the train-once cache (on a tiny subset)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from examples.mnist.model import (
    CACHE_JSON_NAME,
    CACHE_MODEL_NAME,
    InsufficientAccuracyError,
    build_mnist_cnn,
    train_or_load,
)

# Tiny, fast settings: these tests pin caching behaviour, not accuracy.
FAST = {"epochs": 1, "batch_size": 64, "min_accuracy": 0.0, "progress": False}


@pytest.mark.integration
def test_cnn_has_exactly_the_documented_layer_recipe():
    model = build_mnist_cnn()
    assert tuple(model.input_shape) == (None, 28, 28, 1)
    summary = []
    for layer in model.layers:
        config = layer.get_config()
        summary.append(
            (
                type(layer).__name__,
                config.get("filters") or config.get("units") or config.get("rate"),
                tuple(config.get("kernel_size") or config.get("pool_size") or ()),
                config.get("activation"),
            )
        )
    assert summary == [
        ("Conv2D", 32, (3, 3), "relu"),
        ("MaxPooling2D", None, (2, 2), None),
        ("Conv2D", 64, (3, 3), "relu"),
        ("MaxPooling2D", None, (2, 2), None),
        ("Flatten", None, (), None),
        ("Dropout", 0.5, (), None),
        ("Dense", 10, (), "softmax"),
    ]
    assert tuple(model.output_shape) == (None, 10)
    # 320 + 18,496 + 16,010 weights: the classic Keras MNIST convnet.
    assert model.count_params() == 34_826


@pytest.fixture(scope="module")
def trained_cache(tmp_path_factory, tiny_mnist):
    cache = tmp_path_factory.mktemp("cache")
    first = train_or_load(cache, data=tiny_mnist, **FAST)
    return cache, first


@pytest.mark.integration
def test_first_call_trains_and_writes_model_and_metadata(trained_cache, tiny_mnist):
    cache, first = trained_cache
    assert first.trained is True
    assert first.path == cache / CACHE_MODEL_NAME and first.path.is_file()
    metadata = json.loads((cache / CACHE_JSON_NAME).read_text())
    assert metadata["test_accuracy"] == pytest.approx(first.test_accuracy)
    assert metadata["data_source_sha256"] == tiny_mnist.source_sha256
    assert len(metadata["recipe_sha256"]) == 64
    # Even one epoch on 512 images beats chance by a wide margin: the data and labels line up.
    assert first.test_accuracy > 0.5


@pytest.mark.integration
def test_second_call_reloads_the_cache_with_identical_predictions(trained_cache, tiny_mnist):
    cache, first = trained_cache
    second = train_or_load(cache, data=tiny_mnist, **FAST)
    assert second.trained is False
    assert second.test_accuracy == pytest.approx(first.test_accuracy, abs=2e-3)
    images = tiny_mnist.test_images[:16]
    np.testing.assert_allclose(
        second.model.predict(images, verbose=0), first.model.predict(images, verbose=0), atol=1e-6
    )


@pytest.mark.integration
def test_corrupt_model_file_is_retrained_and_repaired(tmp_path, tiny_mnist):
    train_or_load(tmp_path, data=tiny_mnist, **FAST)
    (tmp_path / CACHE_MODEL_NAME).write_bytes(b"not a zip archive")
    repaired = train_or_load(tmp_path, data=tiny_mnist, **FAST)
    assert repaired.trained is True
    assert train_or_load(tmp_path, data=tiny_mnist, **FAST).trained is False


@pytest.mark.integration
def test_corrupt_metadata_or_other_recipe_retrains(tmp_path, tiny_mnist):
    train_or_load(tmp_path, data=tiny_mnist, **FAST)
    (tmp_path / CACHE_JSON_NAME).write_text("{ truncated")
    assert train_or_load(tmp_path, data=tiny_mnist, **FAST).trained is True
    # A different recipe (here: the training subset) must not reuse those weights.
    changed = train_or_load(tmp_path, data=tiny_mnist, max_train_examples=256, **FAST)
    assert changed.trained is True


@pytest.mark.integration
def test_accuracy_below_the_bar_raises_and_leaves_no_cache(tmp_path, tiny_mnist):
    with pytest.raises(InsufficientAccuracyError, match=r"Expected test accuracy >= 0\.9999"):
        train_or_load(
            tmp_path,
            data=tiny_mnist,
            epochs=1,
            batch_size=64,
            min_accuracy=0.9999,
            progress=False,
            max_train_examples=64,
        )
    assert not (tmp_path / CACHE_JSON_NAME).exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive integer, received 0"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer, received 2.5"),
        ({"min_accuracy": 1.5}, r"min_accuracy must be within \[0, 1\], received 1.5"),
        ({"max_train_examples": 0}, "max_train_examples must be a positive integer or None"),
    ],
)
def test_bad_arguments_are_rejected_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_or_load(tmp_path, progress=False, **kwargs)
    assert not any(tmp_path.iterdir())
