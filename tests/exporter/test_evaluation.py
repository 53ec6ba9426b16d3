"""exporter.evaluation: the metrics, and the checks on a model whose answer is known.

The planted model: 8×8 grey images; class 1 is "a bright 3×3 patch in the top-left
corner". Its weights are set by hand so that only that patch moves the class-1 logit,
so a faithful saliency map must point there, and deleting the patch first must kill the
class-1 probability long before a random order does.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import ConfigError, EvaluationConfig, EvaluationError, ExportConfig, SaliencyExporter
from exporter._config import config_from_mapping
from exporter.evaluation import auc, evaluate_export, rankdata, saliency_order, spearman_abs, ssim
from exporter.evaluation import cli as evaluate_cli

SIZE = 8
PATCH = (slice(0, 3), slice(0, 3))


# -- metrics -------------------------------------------------------------------------


def test_rankdata_averages_ties():
    np.testing.assert_array_equal(rankdata([3, 1, 4, 1, 5]), [3, 1.5, 4, 1.5, 5])


def test_spearman_matches_a_hand_computation_with_ties():
    # ranks a = [1, 2.5, 2.5, 4], b = [1, 3, 2, 4]; centred: [-1.5, 0, 0, 1.5], [-1.5, .5, -.5, 1.5]
    # rho = 4.5 / sqrt(4.5 * 5)
    expected = 4.5 / np.sqrt(4.5 * 5.0)
    assert spearman_abs([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(expected, abs=1e-12)
    # Of absolute values: signs do not matter.
    assert spearman_abs([-1, 2, -2, 3], [1, -3, 2, -4]) == pytest.approx(expected, abs=1e-12)


def test_spearman_extremes_and_constant_maps():
    a = np.arange(16.0).reshape(4, 4)
    assert spearman_abs(a, a * 3 + 1) == pytest.approx(1.0)
    assert spearman_abs(a, 100 - a) == pytest.approx(-1.0)
    assert spearman_abs(np.zeros(5), np.zeros(5)) == 1.0
    assert spearman_abs(np.zeros(5), np.arange(5)) == 0.0
    with pytest.raises(ValueError, match="same size"):
        spearman_abs(np.zeros(3), np.zeros(4))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_ssim_identical_maps_is_one_and_symmetric(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random((12, 12)), rng.random((12, 12))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, b) == pytest.approx(ssim(b, a))
    assert ssim(a, b) < 1.0


def test_ssim_of_all_zero_maps_is_one_not_nan():
    assert ssim(np.zeros((8, 8)), np.zeros((8, 8))) == 1.0


def test_auc_is_the_trapezoid_over_the_fraction_of_pixels():
    np.testing.assert_allclose(auc(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])), [0.5, 1.0, 0.5])
    assert auc(np.array([1.0, 0.5, 0.0, 0.0, 0.0])) == pytest.approx((1.5 + 0.5) / 8)


def test_saliency_order_is_descending_and_breaks_ties_at_random():
    maps = np.array([[[0.1, 0.9], [0.5, 0.0]]])
    np.testing.assert_array_equal(saliency_order(maps), [[1, 2, 0, 3]])
    flat = np.zeros((1, 8, 8))
    assert not np.array_equal(saliency_order(flat)[0], np.arange(64))  # not raster order


# -- the planted model ----------------------------------------------------------------


def planted_model() -> keras.Model:
    """conv (filter 0 passes the pixel through) → flatten → dense: logit1 = 2·Σ patch − 10."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    kernel[1, 1, 0, 0] = 1.0
    kernel[..., 1] = np.random.default_rng(0).normal(0, 0.1, (3, 3, 1))
    model.get_layer("conv").set_weights([kernel, np.zeros(2, np.float32)])
    dense = np.zeros((SIZE, SIZE, 2, 2), np.float32)
    dense[PATCH[0], PATCH[1], 0, 1] = 2.0  # filter 0 inside the patch → class 1
    model.get_layer("head").set_weights([dense.reshape(-1, 2), np.array([0.0, -10.0], np.float32)])
    return model


def planted_images(n: int = 8, seed: int = 0) -> np.ndarray:
    """Class-1 images: dim noise everywhere, a bright patch in the corner."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.3, (n, SIZE, SIZE, 1)).astype(np.float32)
    images[:, PATCH[0], PATCH[1], :] = rng.uniform(0.85, 1.0, (n, 3, 3, 1))
    return images


def edge_detector(model, images, target):  # noqa: ARG001 - ignores the model on purpose
    """A 'method' that never looks at the model: the image's gradient magnitude."""
    gy, gx = np.gradient(images[..., 0], axis=(1, 2))
    return np.hypot(gx, gy)


FAST = EvaluationConfig(num_images=8, steps=16, seed=0)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    model = planted_model()
    images = planted_images()
    probabilities = model.predict(images, verbose=0)
    assert (probabilities[:, 1] > 0.99).all()  # the planted evidence is what the model sees
    path = SaliencyExporter(model, ExportConfig(name="planted")).write(
        tmp_path_factory.mktemp("planted"), samples=images
    ).path
    report = evaluate_export(path, images, model=model, custom_methods={"edges": edge_detector}, config=FAST)
    return model, images, path, report


@pytest.mark.integration
def test_vanilla_gradient_points_at_the_planted_patch(planted):
    vanilla = planted[3].method("vanilla")
    assert vanilla.example_map[PATCH].min() == pytest.approx(1.0)
    assert vanilla.example_map.sum() == pytest.approx(9.0)


@pytest.mark.integration
def test_deletion_in_saliency_order_drops_faster_than_random(planted):
    report = planted[3]
    vanilla = report.method("vanilla")
    assert vanilla.scores.deletion_auc < report.random.deletion_auc - 0.2
    assert vanilla.deletion_gain_over_random > 0.2
    # 9 of 64 pixels hold the evidence: after ~19 % deleted the class is gone.
    assert vanilla.scores.deletion_curve[3] < 0.05
    assert vanilla.scores.insertion_auc > report.random.insertion_auc
    assert vanilla.scores.deletion_curve[0] > 0.99  # step 0 is the untouched image


@pytest.mark.integration
def test_randomization_passes_for_vanilla_and_fails_for_a_model_independent_method(planted):
    report = planted[3]
    vanilla, edges = report.method("vanilla"), report.method("edges")
    assert [s.layer for s in vanilla.randomization] == ["head", "conv"]  # top layer first
    assert vanilla.randomized_spearman < 0.5 and vanilla.passed
    assert edges.randomized_spearman == pytest.approx(1.0)
    assert all(s.ssim == pytest.approx(1.0) for s in edges.randomization)
    assert not edges.passed and "randomization test failed" in edges.failures[0]
    assert not report.passed and report.failures[0].startswith("edges: ")


@pytest.mark.integration
def test_evaluation_never_modifies_the_model_or_the_export(planted):
    model, _, path, _ = planted
    reference = planted_model()
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not list(path.parent.glob(".tmp-*")) and (path / "saved_model.pb").is_file()


@pytest.mark.integration
def test_report_json_and_figure(planted, tmp_path):
    from PIL import Image

    from exporter.evaluation import draw_figure

    report = planted[3]
    data = json.loads(report.write_json(tmp_path / "e.json").read_text())
    assert set(data["methods"]) == {"vanilla", "edges"}
    assert data["methods"]["edges"]["passed"] is False
    assert len(data["methods"]["vanilla"]["deletion_curve"]) == FAST.steps + 1
    assert data["random"]["deletion_auc"] == pytest.approx(report.random.deletion_auc, abs=1e-6)
    figure = Image.open(draw_figure(report, tmp_path / "e.png"))
    assert figure.size[0] > 600 and figure.size[1] > 400


@pytest.mark.integration
def test_a_model_that_is_not_the_export_is_refused(planted):
    _, images, path, _ = planted
    other = planted_model()
    other.get_layer("head").set_weights([w * 0.5 for w in other.get_layer("head").get_weights()])
    with pytest.raises(ConfigError, match="not the one this export was made from"):
        evaluate_export(path, images, model=other, config=FAST)


@pytest.mark.integration
def test_unknown_and_unexported_methods_are_refused(planted):
    _, images, path, _ = planted
    with pytest.raises(ConfigError, match="not in this export"):
        evaluate_export(path, images, model=planted[0], methods=["smoothgrad"], config=FAST)
    with pytest.raises(ConfigError, match="Unknown method"):
        evaluate_export(path, images, model=planted[0], methods=["nope"], config=FAST)


@pytest.mark.integration
def test_images_of_the_wrong_shape_are_refused(planted):
    with pytest.raises(ConfigError, match=r"must be \[N, 8, 8, 1\]"):
        evaluate_export(planted[2], np.zeros((2, 5, 5, 1)), model=planted[0], config=FAST)


def test_evaluation_data_is_a_npy_file_the_user_gives(tmp_path):
    from exporter.evaluation._data import load_images

    np.save(tmp_path / "images.npy", np.arange(8, dtype=np.uint8).reshape(2, 2, 2, 1))
    loaded = load_images(tmp_path / "images.npy")
    assert loaded.dtype == np.float32 and loaded.shape == (2, 2, 2, 1) and loaded[1, 1, 1, 0] == 7.0
    # No data set is built in: a bare name is not a file.
    for spec in ("mnist", tmp_path / "images.png"):
        with pytest.raises(ConfigError, match=rf"must be a \.npy file of images \[N,H,W,C\].*received '{spec}'"):
            load_images(spec)
    with pytest.raises(ConfigError, match=r"missing\.npy does not exist"):
        load_images(tmp_path / "missing.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ConfigError, match=r"objects\.npy is not a plain numpy array"):
        load_images(tmp_path / "objects.npy")


def test_saliency_evaluate_help_names_no_built_in_data_set(capsys):
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--data DATA held-out images: a .npy file [N,H,W,C] of model inputs" in help_text
    assert "MNIST" not in help_text and "'mnist'" not in help_text


# -- config, CLI and the export gate ---------------------------------------------------


def test_evaluation_config_is_parsed_and_checked():
    config = config_from_mapping({"evaluation": {"enabled": True, "data": "x.npy", "num_images": 4, "max_randomization_spearman": 0.3}})
    assert config.evaluation == EvaluationConfig(enabled=True, data="x.npy", num_images=4, max_randomization_spearman=0.3)
    assert ExportConfig().evaluation.enabled is False  # opt-in
    with pytest.raises(ConfigError, match="Unknown key evaluation.treshold"):
        config_from_mapping({"evaluation": {"treshold": 1}})
    with pytest.raises(ConfigError, match="evaluation.enabled must be true or false"):
        config_from_mapping({"evaluation": {"enabled": 1}})


@pytest.mark.integration
def test_the_gate_publishes_a_good_export_and_records_the_scores(tmp_path):
    config = ExportConfig(name="planted", evaluation=EvaluationConfig(enabled=True, num_images=8, steps=8))
    result = SaliencyExporter(planted_model(), config).write(tmp_path, samples=planted_images())
    assert result.path == tmp_path / "1"
    assert result.report["evaluation"]["passed"] is True
    recorded = json.loads((result.path / "assets.extra" / "export_report.json").read_text())
    assert recorded["evaluation"]["methods"]["vanilla"]["randomized_spearman"] < 0.5


@pytest.mark.integration
def test_the_gate_blocks_a_failing_export_and_publishes_nothing(tmp_path):
    # Demand more than any method can give: the mechanism is what is under test here.
    strict = EvaluationConfig(enabled=True, num_images=8, steps=8, min_deletion_gain_over_random=0.99)
    config = ExportConfig(name="planted", evaluation=strict)
    with pytest.raises(EvaluationError, match=r"(?s)nothing was published.*vanilla: deletion no better than random"):
        SaliencyExporter(planted_model(), config).write(tmp_path, samples=planted_images())
    assert list(tmp_path.iterdir()) == []  # no version, no staging directory


@pytest.mark.integration
def test_the_gate_needs_images(tmp_path):
    config = ExportConfig(evaluation=EvaluationConfig(enabled=True))
    with pytest.raises(ConfigError, match=r"no evaluation images"):
        SaliencyExporter(planted_model(), config).write(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_saliency_evaluate_cli_exit_codes(planted, tmp_path, capsys):
    model, images, path, _ = planted
    np.save(tmp_path / "images.npy", images)
    model.save(tmp_path / "planted.keras")
    common = [str(path), "--data", str(tmp_path / "images.npy"), "--model", str(tmp_path / "planted.keras"),
              "--num-images", "8", "--steps", "8", "-q"]
    assert evaluate_cli.main([*common, "--out", str(tmp_path / "ok")]) == 0
    out = capsys.readouterr().out
    assert "vanilla" in out and "PASS" in out
    assert (tmp_path / "ok" / "evaluation.json").is_file() and (tmp_path / "ok" / "evaluation.png").is_file()
    assert evaluate_cli.main([*common, "--out", str(tmp_path / "bad"), "--min-deletion-gain", "0.99"]) == 1
    assert "FAILED vanilla: deletion no better than random" in capsys.readouterr().out
    assert evaluate_cli.main([str(tmp_path), "--data", "x.npy", "--model", "m.keras", "-q"]) == 2
    assert "not a saliency-serving export" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli.main([str(path)])  # --data is required
    assert exit_info.value.code == 2


@pytest.mark.integration
def test_saliency_export_evaluate_flag(tmp_path):
    from exporter import cli as export_cli

    planted_model().save(tmp_path / "planted.keras")
    np.save(tmp_path / "images.npy", planted_images())
    (tmp_path / "export.toml").write_text(f'[evaluation]\ndata = "{tmp_path / "images.npy"}"\nnum_images = 8\nsteps = 8\n')
    args = ["--model", str(tmp_path / "planted.keras"), "--config", str(tmp_path / "export.toml"), "-q"]
    assert export_cli.main([*args, "--output", str(tmp_path / "plain")]) == 0
    assert "evaluation" not in json.loads((tmp_path / "plain" / "1" / "assets.extra" / "export_report.json").read_text())
    assert export_cli.main([*args, "--output", str(tmp_path / "gated"), "--evaluate"]) == 0
    assert json.loads((tmp_path / "gated" / "1" / "assets.extra" / "export_report.json").read_text())["evaluation"]["passed"]
