"""Config files: the documented example loads; mistakes are named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import ConfigError, ExportConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_documented_example_config_loads():
    config = load_config(ROOT / "configs" / "export.toml")
    assert config.name == "mnist" and config.input_shape == (28, 28, 1)
    assert config.class_names == tuple(str(i) for i in range(10))
    assert config.reduction == "max_abs"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\nnmae = 'x'\n", r"Unknown key model\.nmae"),
        ("[modle]\n", r"Unknown key modle"),
        ("[saliency]\nreduction = 'mean'\n", r"saliency\.reduction must be one of max_abs, max, sum_abs, l2; received 'mean'"),
        ("[model]\ninput_shape = [28, 28]\n", r"model\.input_shape must be a list of 3 integers"),
        ("[model]\ninput_shape = [28, 'a', 1]\n", r"model\.input_shape\[1\] must be an integer"),
        ("[verification]\nlogits_atol = 'small'\n", r"verification\.logits_atol must be a number"),
        ("[verification]\nnum_samples = 0\n", r"verification\.num_samples must be >= 1"),
        ("[verification]\nsample_range = [1.0, 0.0]\n", r"verification\.sample_range must be \[low, high\]"),
        ("[warmup]\nbatch_sizes = 8\n", r"warmup\.batch_sizes must be a list of integers"),
        ("model = 3\n", r"\[model\] must be a table"),
        ("[model\n", r"not valid TOML"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_invalid_reduction_in_python_api_is_rejected():
    with pytest.raises(ConfigError, match="reduction"):
        ExportConfig(reduction="avg")
