"""Fixtures for the MNIST example tests (data loader and demo model)."""

from __future__ import annotations

import dataclasses

import pytest

from examples.mnist.data import MnistData, load_mnist


@pytest.fixture(scope="session")
def mnist() -> MnistData:
    """The real MNIST splits, read once per session (about two seconds)."""
    return load_mnist()


@pytest.fixture(scope="session")
def tiny_mnist(mnist: MnistData) -> MnistData:
    """A few hundred real examples: enough to train and evaluate in seconds, not to 98%."""
    return dataclasses.replace(
        mnist,
        train_images=mnist.train_images[:512],
        train_labels=mnist.train_labels[:512],
        validation_images=mnist.validation_images[:128],
        validation_labels=mnist.validation_labels[:128],
        test_images=mnist.test_images[:256],
        test_labels=mnist.test_labels[:256],
    )
