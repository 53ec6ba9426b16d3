"""--xla_cpu_compilation_enabled: as in TF Serving (default false), a graph that must be
XLA-compiled is refused without it, with a message naming the flag; with it, it runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_server import ModelServer, ServerOptions
from model_server._servable import load_saved_model
from model_server._server import ModelServerError
from model_server._xla import XLA_FLAG, XlaRequiredError
from model_server.cli import build_parser, options_from_args


def _jit_compiled_saved_model(path: Path) -> Path:
    """Version 1 of a model whose serving signature calls a jit_compile=True function: 2x + 1."""
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(jit_compile=True)
        def compiled(self, x):
            return x * 2.0

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.compiled(x) + 1.0}

    module = Module()
    tf.saved_model.save(module, str(path / "1"), signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="module")
def jit_model(tmp_path_factory) -> Path:
    return _jit_compiled_saved_model(tmp_path_factory.mktemp("jit"))


def test_flag_parses_as_tf_serving_spells_it_and_defaults_to_false():
    common = ["--model_name", "m", "--model_base_path", "/m"]
    assert options_from_args(build_parser().parse_args(common)).xla_cpu_compilation_enabled is False
    for extra in (["--xla_cpu_compilation_enabled"], ["--xla_cpu_compilation_enabled=true"]):
        assert options_from_args(build_parser().parse_args(common + extra)).xla_cpu_compilation_enabled


@pytest.mark.integration
def test_a_graph_needing_xla_is_refused_by_default_and_runs_with_the_flag(jit_model):
    with pytest.raises(XlaRequiredError, match=f"needs XLA .*function .*compiled.*{XLA_FLAG}=true") as refused:
        load_saved_model("jit", 1, jit_model / "1")
    assert refused.value.error_code == 13  # INTERNAL, as TF Serving's failed run

    servable = load_saved_model("jit", 1, jit_model / "1", xla_cpu_compilation_enabled=True)
    try:
        signature = servable.signature_defs["serving_default"]
        (y,) = servable.run([signature.outputs["y"].name], {signature.inputs["x"].name: np.array([1.0, 4.0], np.float32)})
        np.testing.assert_allclose(y, [3.0, 9.0])
    finally:
        servable.close()


@pytest.mark.integration
def test_server_start_fails_naming_the_flag_when_the_only_model_needs_xla(jit_model):
    options = ServerOptions.single_model("jit", jit_model, port=0, rest_api_port=None, file_system_poll_wait_seconds=0)
    with pytest.raises(ModelServerError, match=f"initial model load failed: jit: version 1: .*{XLA_FLAG}=true"):
        ModelServer(options).start()
