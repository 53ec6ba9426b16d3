"""LoadedServable.run: the cached session callable answers exactly as Session.run."""

from __future__ import annotations

import numpy as np
import pytest

from model_server._servable import load_saved_model
from tests.server.server_test_models import expected_logits

pytestmark = pytest.mark.integration


def test_cached_callable_matches_session_run_for_every_batch_size(export_pool) -> None:
    path = export_pool["scale1"]
    servable = load_saved_model("m", 1, path)
    try:
        signature = servable.signature_defs["serving_default"]
        fetches = [signature.outputs[a].name for a in sorted(signature.outputs)]
        (alias,) = signature.inputs
        for batch in (1, 3, 1):
            images = np.random.default_rng(batch).random((batch, *[d.size for d in signature.inputs[alias].tensor_shape.dim[1:]]), dtype=np.float32)
            feeds = {signature.inputs[alias].name: images}
            expected = servable.session.run(fetches, feed_dict=feeds)
            got = servable.run(fetches, feeds)
            assert len(got) == len(expected)
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(got[sorted(signature.outputs).index("logits")], expected_logits(images, 1.0), rtol=1e-5, atol=1e-5)
        assert len(servable._callables) == 1  # one callable per (fetches, feed names), reused
    finally:
        servable.close()


def test_cached_callable_keeps_tensorflow_errors(export_pool) -> None:
    import pytest
    import tensorflow as tf

    path = export_pool["scale1"]
    servable = load_saved_model("m", 1, path)
    try:
        signature = servable.signature_defs["serving_default"]
        fetches = [signature.outputs[a].name for a in sorted(signature.outputs)]
        (alias,) = signature.inputs
        wrong = np.full((1, *[d.size for d in signature.inputs[alias].tensor_shape.dim[1:]]), np.nan, np.float32)  # CheckNumerics fails
        with pytest.raises(tf.errors.OpError):
            servable.run(fetches, {signature.inputs[alias].name: wrong})
    finally:
        servable.close()


def test_session_keeps_tensorflow_thread_counts_and_turns_spinning_off(export_pool) -> None:
    # TF Serving's defaults (0: TF picks all cores) for the pool sizes; only spinning is off
    # (docs/benchmarks.md, "Server overhead").
    servable = load_saved_model("m", 1, export_pool["scale1"])
    try:
        config = servable.session._config
        assert config.experimental.disable_thread_spinning
        assert config.inter_op_parallelism_threads == 0
        assert config.intra_op_parallelism_threads == 0
        assert not config.use_per_session_threads
    finally:
        servable.close()
