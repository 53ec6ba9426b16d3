"""The TF-free contract agrees with TensorFlow and TF Serving, the references it transcribes."""

from __future__ import annotations

import pytest

from serving_client import contract
from serving_client.contract import DataType


def test_datatype_numbers_are_tensorflows(official):
    # The independent reference: TensorFlow's own generated types_pb2.
    types_pb2 = pytest.importorskip("tensorflow.core.framework.types_pb2")
    for member in DataType:
        assert types_pb2.DataType.Value(member.name) == member.value, member.name


def test_input_formats_map_to_the_dtypes_tf_names(official):
    tf = official.tf
    assert contract.INPUT_FORMATS == ("float32", "uint8", "image_bytes")
    assert contract.INPUT_FORMAT_DTYPES[contract.FLOAT32] == tf.float32.as_datatype_enum
    assert contract.INPUT_FORMAT_DTYPES[contract.UINT8] == tf.uint8.as_datatype_enum
    assert contract.INPUT_FORMAT_DTYPES[contract.IMAGE_BYTES] == tf.string.as_datatype_enum
    for name, dtype in contract.INPUT_FORMAT_DTYPES.items():
        assert contract.input_format_of_dtype(dtype) == name
    assert contract.input_format_of_dtype(tf.int32.as_datatype_enum) is None


def test_version_directory_paths_are_tf_servings():
    # TF Serving reads warmup from <version>/assets.extra/tf_serving_warmup_requests
    # (saved_model_warmup_util.cc: kSavedModelAssetsExtraDirectory, kSavedModelWarmupRequestsFilename).
    assert str(contract.WARMUP_ASSET) == "assets.extra/tf_serving_warmup_requests"
    assert contract.REPORT_ASSET.parent == contract.ASSETS_EXTRA


@pytest.mark.parametrize(
    ("method", "signature"),
    [("vanilla", "explain"), ("smoothgrad", "explain_smoothgrad"), ("gradient_squared", "explain_gradient_squared")],
)
def test_one_naming_rule_both_ways(method, signature):
    assert contract.signature_name(method) == signature
    assert contract.method_of_signature(signature) == method


def test_methods_of_signatures_keeps_only_explanations():
    names = ["serving_default", "explain_ig", "explain", "custom_saliency", "explain_"]
    assert contract.methods_of_signatures(names) == {"ig": "explain_ig", "vanilla": "explain"}


@pytest.mark.parametrize("bad", ["Vanilla", "two words", "", "1st"])
def test_a_method_name_that_cannot_name_a_signature_is_refused(bad):
    with pytest.raises(ValueError, match=f"lower-case identifier; received {bad!r}"):
        contract.signature_name(bad)
