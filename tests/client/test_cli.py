"""saliency-client: output and exit codes against the 127.0.0.1 test server."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from serving_client.cli import main

from .conftest import IMAGE_SHAPE


@pytest.fixture
def digit_pngs(tmp_path):
    (tmp_path / "in").mkdir()
    # 16x16 RGB: the CLI must convert to the served 8x8x1 that metadata() announces.
    bright = tmp_path / "in" / "digit0.png"
    Image.fromarray(np.full((16, 16, 3), 255, np.uint8)).save(bright)
    # Negative floats (kept as is from .npy) make the fake model answer class 1.
    dark = tmp_path / "in" / "digit1.npy"
    np.save(dark, np.full(IMAGE_SHAPE, -1.0, np.float32))
    return [str(bright), str(dark)]


def common(serving, model="mnist"):
    return ["--server", serving.target, "--model", model, "--timeout", "5"]


def test_explain_writes_one_overlay_per_image_and_prints_a_line_each(
    serving, digit_pngs, tmp_path, capsys
):
    out = tmp_path / "out"
    code = main(["explain", *digit_pngs, *common(serving), "--out", str(out), "--colormap", "jet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(digit_pngs[0])
    assert "predicted=0" in lines[0]  # bright image → class 0 in the fake model
    assert "target=0" in lines[0]
    assert "probability=" in lines[0]
    for line in lines:
        overlay_path = line.split("overlay=")[1]
        picture = np.asarray(Image.open(overlay_path))
        assert picture.shape == (*IMAGE_SHAPE[:2], 3)
    assert serving.calls["mnist"] == 2  # metadata + one batched explain


def test_explain_target_class_and_signature_are_passed(serving, digit_pngs, tmp_path, capsys):
    code = main(
        ["explain", digit_pngs[0], *common(serving), "--out", str(tmp_path / "o"),
         "--target-class", "2", "--signature", "explain_smoothgrad"]
    )
    output = capsys.readouterr().out
    assert code == 0
    assert "target=2" in output
    assert "explain_smoothgrad.png" in output


def test_predict_prints_class_and_probability(serving, digit_pngs, capsys):
    code = main(["predict", *digit_pngs, *common(serving)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert [line.split("\t")[1] for line in lines] == ["predicted=0", "predicted=1"]


def test_metadata_prints_signatures_and_tensors(serving, capsys):
    code = main(["metadata", *common(serving)])
    output = capsys.readouterr().out
    assert code == 0
    assert "signature explain (tensorflow/serving/predict)" in output
    assert "input  images float32 [?, 8, 8, 1]" in output
    assert "output saliency float32 [?, 8, 8]" in output


def test_status_prints_versions_and_states(serving, capsys):
    code = main(["status", *common(serving), "--version-label", "stable"])
    output = capsys.readouterr().out
    assert code == 0
    assert "version 2\tAVAILABLE\tOK" in output
    assert "version 1\tEND\tFAILED_PRECONDITION\tunloaded after a failed load" in output


def test_server_error_exits_1_with_a_message_and_no_traceback(serving, capsys):
    code = main(["status", *common(serving, model="missing")])
    captured = capsys.readouterr()
    assert code == 1
    assert "NOT_FOUND" in captured.err
    assert "Traceback" not in captured.err


def test_missing_image_exits_1(serving, tmp_path, capsys):
    code = main(["explain", str(tmp_path / "nope.png"), *common(serving), "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert "nope.png" in captured.err
    assert "Traceback" not in captured.err


def test_corrupt_image_exits_1(serving, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    code = main(["predict", str(bad), *common(serving)])
    assert code == 1
    assert "bad.png" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["explain", "x.png", "--model", "m", "--out", "o"],  # no --server
        ["status", "--server", "h:1", "--model", "m", "--version", "1", "--version-label", "a"],
        ["explain", "x.png", "--server", "h:1", "--model", "m", "--out", "o", "--colormap", "rainbow"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "explain" in capsys.readouterr().out


def test_console_script_runs_as_a_process(serving):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "serving_client.cli", "status", *common(serving)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "AVAILABLE" in result.stdout


def test_explain_method_flag_selects_the_signature(serving, digit_pngs, tmp_path, capsys):
    code = main(
        ["explain", digit_pngs[0], *common(serving, model="multi"), "--out", str(tmp_path / "o"),
         "--method", "smoothgrad", "--overlay-type", "grayscale", "--clip-percentiles", "5,95"]
    )
    output = capsys.readouterr().out
    assert code == 0
    assert "explain_smoothgrad.png" in output


def test_explain_polarity_both_draws_the_signed_ig_attributions(serving, digit_pngs, tmp_path, capsys):
    code = main(
        ["explain", digit_pngs[1], *common(serving, model="multi"), "--out", str(tmp_path / "o"),
         "--method", "integrated_gradients", "--polarity", "both", "--alpha", "1"]
    )
    output = capsys.readouterr().out
    assert code == 0, output
    picture = np.asarray(Image.open(output.split("overlay=")[1].strip()))
    # The fake attributions are images * 0.5 = -0.5 everywhere: the pink (negative) end.
    np.testing.assert_array_equal(picture[0, 0], [0x8E, 0x01, 0x52])


def test_explain_polarity_without_signed_attributions_exits_1(serving, digit_pngs, tmp_path, capsys):
    code = main(
        ["explain", digit_pngs[0], *common(serving), "--out", str(tmp_path), "--polarity", "negative"]
    )
    assert code == 1
    assert "integrated_gradients" in capsys.readouterr().err


def test_explain_method_the_model_lacks_exits_1_listing_the_offered_ones(serving, digit_pngs, tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["explain", digit_pngs[0], *common(serving, model="multi"), "--out", str(out), "--method", "gradcam"])
    assert code == 1
    err = capsys.readouterr().err
    assert "--method: the model does not export gradcam (no signature 'explain_gradcam')" in err
    assert "it offers vanilla, integrated_gradients, smoothgrad." in err
    assert not out.exists()


def test_explain_method_and_signature_that_disagree_exit_1(serving, digit_pngs, tmp_path, capsys):
    code = main(
        ["explain", digit_pngs[0], *common(serving), "--out", str(tmp_path),
         "--method", "smoothgrad", "--signature", "explain"]
    )
    assert code == 1
    assert "pass one of them" in capsys.readouterr().err


def test_compare_writes_one_grid_with_every_offered_method(serving, digit_pngs, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", digit_pngs[0], *common(serving, model="multi"), "--out", str(out), "--scale", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines[:-1]] == ["vanilla", "integrated_gradients", "smoothgrad"]
    assert all("predicted=0" in line and "target=0" in line for line in lines[:-1])
    assert "signature=explain_integrated_gradients" in lines[1]
    grid_path = lines[-1].removeprefix("grid=")
    assert grid_path == str(out / "digit0_compare.png")
    picture = np.asarray(Image.open(grid_path))
    # 4 cells of 16 px side by side (widened to fit their labels), plus a label row on top.
    assert picture.shape[0] > 16 + 4 and picture.shape[1] >= 4 * 16


def test_compare_methods_flag_picks_and_orders_the_methods(serving, digit_pngs, tmp_path, capsys):
    code = main(
        ["compare", digit_pngs[0], *common(serving, model="multi"), "--out", str(tmp_path),
         "--methods", "integrated_gradients,vanilla"]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert [line.split("\t")[0] for line in lines[:-1]] == ["integrated_gradients", "vanilla"]


@pytest.mark.parametrize(
    ("methods", "message"),
    [("vanilla,lime", "does not export lime (no signature 'explain_lime')"), ("gradcam", "does not export gradcam")],
)
def test_compare_rejects_unknown_or_missing_methods(serving, digit_pngs, tmp_path, capsys, methods, message):
    code = main(["compare", digit_pngs[0], *common(serving, model="multi"), "--out", str(tmp_path), "--methods", methods])
    assert code == 1
    assert message in capsys.readouterr().err


def test_bad_clip_percentiles_are_a_usage_error(capsys):
    argv = ["compare", "x.png", "--server", "h:1", "--model", "m", "--out", "o", "--clip-percentiles", "99"]
    assert main(argv) == 2
    assert "LOW,HIGH" in capsys.readouterr().err
