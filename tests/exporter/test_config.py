"""Config files: the documented example loads; mistakes are named precisely."""

from __future__ import annotations

import dataclasses
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


# --- Python and TOML accept exactly the same values (the dataclasses validate, once) --------


def _python(table: str, key: str, value):
    """The config Python code would build for `[table] key = value`."""
    from exporter import (
        EvaluationConfig,
        InputConfig,
        IntegratedGradientsParams,
        LimitsConfig,
        MethodsConfig,
        SmoothGradParams,
        VerificationConfig,
    )

    value = tuple(value) if isinstance(value, list) else value
    builders = {
        "verification": lambda: ExportConfig(verification=VerificationConfig(**{key: value})),
        "evaluation": lambda: ExportConfig(evaluation=EvaluationConfig(**{key: value})),
        "input": lambda: ExportConfig(input=InputConfig(format="image_bytes", **{key: value})),
        "limits": lambda: ExportConfig(limits=LimitsConfig(**{key: value})),
        "methods": lambda: ExportConfig(methods=MethodsConfig(**{key: value})),
        "methods.smoothgrad": lambda: ExportConfig(methods=MethodsConfig(params=[SmoothGradParams(**{key: value})])),
        "methods.integrated_gradients": lambda: ExportConfig(
            methods=MethodsConfig(params=[IntegratedGradientsParams(**{key: value})])
        ),
        "model": lambda: ExportConfig(**{key: value}),
    }
    return builders[table]()


def _toml(tmp_path: Path, table: str, key: str, value) -> ExportConfig:
    import json

    extra = 'format = "image_bytes"\n' if table == "input" else ""
    # JSON spells these numbers, strings and arrays as TOML does.
    path = tmp_path / "same.toml"
    path.write_text(f"[{table}]\n{extra}{key} = {json.dumps(value)}\n")
    return load_config(path)


SAME_BOTH_WAYS = [
    ("verification", "num_samples", 0),
    ("verification", "num_samples", 2),
    ("verification", "fd_positions", 0),
    ("verification", "logits_atol", 0),
    ("verification", "saliency_atol", -1e-3),
    ("verification", "sample_range", [1.0, 0.0]),
    ("verification", "sample_range", [-1, 1]),
    ("verification", "seed", -1),
    ("evaluation", "num_images", 0),
    ("evaluation", "blur_sigma", 0),
    ("evaluation", "enabled", 1),
    ("input", "max_pixels", 0),
    ("input", "max_pixels", 4096),
    ("input", "scale", "x"),
    ("limits", "memory_budget_mib", 0),
    ("methods", "internal_batch", 0),
    ("methods", "enabled", []),
    ("methods", "enabled", ["lime"]),
    ("methods", "enabled", ["smoothgrad", "vanilla"]),
    ("methods.smoothgrad", "samples", 0),
    ("methods.smoothgrad", "noise", -0.1),
    ("methods.smoothgrad", "noise", 0),
    ("methods.smoothgrad", "input_range", [1, 0]),
    ("methods.integrated_gradients", "steps", 0),
    ("methods.integrated_gradients", "baseline", "black"),
    ("model", "name", ""),
    ("model", "input_shape", [28, 0, 1]),
]


@pytest.mark.parametrize(("table", "key", "value"), SAME_BOTH_WAYS, ids=[f"{t}.{k}={v}" for t, k, v in SAME_BOTH_WAYS])
def test_python_and_toml_accept_and_refuse_the_same_values(tmp_path, table, key, value):
    try:
        from_python = _python(table, key, value)
    except ConfigError as error:
        with pytest.raises(ConfigError) as from_file:
            _toml(tmp_path, table, key, value)
        # load_config prefixes the file name; the rule and the key are the same message.
        assert str(from_file.value).endswith(str(error)), (str(from_file.value), str(error))
        return
    assert _toml(tmp_path, table, key, value) == from_python


def test_zero_verification_samples_are_refused_from_python_too():
    from exporter import VerificationConfig

    with pytest.raises(ConfigError, match=r"verification\.num_samples must be >= 1; received 0"):
        VerificationConfig(num_samples=0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[methods]\nsmoothgrad_samples = 4\n",
            r"methods\.smoothgrad_samples is no longer read: it is now \[methods\.smoothgrad\] samples",
        ),
        ("[methods]\nig_steps = 4\n", r"methods\.ig_steps is no longer read: it is now \[methods\.integrated_gradients\] steps"),
        ("[methods]\ngradcam_layer = 'conv'\n", r"it is now \[methods\.gradcam\] layer"),
        ("[smoothgrad]\nsamples = 4\n", r"\[smoothgrad\] is no longer read: it is now \[methods\.smoothgrad\]"),
        ("[integrated_gradients]\nsteps = 4\n", r"\[integrated_gradients\] is no longer read: it is now \[methods\.integrated_gradients\]"),
        (
            "[methods.smoothgrad]\nsigma = 0.1\n",
            r"Unknown key methods\.smoothgrad\.sigma in \[methods\.smoothgrad\]; expected one of: input_range, max_samples, noise, samples, seed\.",
        ),
        (
            "[methods.lime]\nx = 1\n",
            r"Unknown key methods\.lime in \[methods\]; expected one of: .*enabled, .*gradcam, (.*, )?integrated_gradients, internal_batch, .*smoothgrad",
        ),
        ("[verification]\nsamples = 4\n", r"Unknown key verification\.samples in \[verification\]; expected one of: fd_epsilon, "),
        ("[limits]\nfloor = 3\n", r"Unknown key limits\.floor in \[limits\]; expected one of: memory_budget_mib, max_images or a signature name: serving_default, explain, "),
        ("methods = 3\n", r"\[methods\] must be a table"),
    ],
)
def test_unknown_and_renamed_keys_name_the_key_the_table_and_the_way_out(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_the_methods_record_of_a_report_reads_back_in_both_layouts():
    from exporter import IntegratedGradientsParams, MethodsConfig, SmoothGradParams
    from exporter._config import methods_from_record
    from exporter._config_loader import to_mapping

    methods = MethodsConfig(
        enabled=("integrated_gradients", "smoothgrad"),
        internal_batch=4,
        params=[SmoothGradParams(samples=3, input_range=(-1.0, 1.0)), IntegratedGradientsParams(steps=9)],
    )
    assert methods_from_record(to_mapping(methods)) == methods
    flat = {
        "enabled": ["vanilla", "smoothgrad", "integrated_gradients"], "internal_batch": 4,
        "smoothgrad_samples": 3, "smoothgrad_noise": 0.15, "smoothgrad_input_range": [-1.0, 1.0],
        "smoothgrad_seed": 0, "ig_steps": 9, "ig_baseline": 0.0, "gradcam_layer": None,
    }  # fmt: skip
    # A flat record predates the per-request inputs, so its signatures had none.
    assert methods_from_record(flat) == dataclasses.replace(methods, request_inputs=False)
    assert methods_from_record(None) == MethodsConfig(request_inputs=False)  # explain only, as before


def test_every_documented_key_of_the_example_config_is_read(tmp_path):
    config = load_config(ROOT / "configs" / "export.toml")
    assert config.methods.params_of("smoothgrad").samples == 16
    assert config.methods.params_of("integrated_gradients").steps == 64
    assert config.verification.num_samples == 4 and config.limits.memory_budget_mib == 2048


def test_the_config_types_are_public():
    import exporter

    for name in (
        "ExportConfig", "InputConfig", "LimitsConfig", "MethodsConfig", "VerificationConfig",
        "EvaluationConfig", "SmoothGradParams", "IntegratedGradientsParams", "GradCamParams",
    ):  # fmt: skip
        assert name in exporter.__all__ and hasattr(exporter, name)
