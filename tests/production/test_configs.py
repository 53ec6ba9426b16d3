"""The production configs parse with TF Serving's own messages and agree with each other.

No TF Serving binary or Docker engine is available here, so this is the static half of the
production path: every file is parsed the way the server parses it (text-format protobuf,
unknown fields rejected) and the names, paths and ports that must line up across the
configs, the docker command and the Kubernetes manifests are compared.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from model_server._config_protos import batching_parameters_class, monitoring_config_class

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
MODEL_NAME = "mnist"
BASE_PATH = "/models/mnist"
METRICS_PATH = "/monitoring/prometheus/metrics"
GRPC_PORT, REST_PORT = 8500, 8501
CONFIG_FLAGS = {
    "--model_config_file": "/configs/models.config",
    "--batching_parameters_file": "/configs/batching.config",
    "--monitoring_config_file": "/configs/monitoring.config",
}


def parse(text: str, message_class):
    return text_format.Parse(text, message_class())


def parse_file(name: str, message_class):
    return parse((CONFIGS / name).read_text(), message_class)


def manifests(name: str) -> list[dict]:
    with open(CONFIGS / "k8s" / name) as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def by_kind(docs: list[dict], kind: str) -> dict:
    matches = [doc for doc in docs if doc["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def script_text() -> str:
    return (CONFIGS / "serve_tfserving.sh").read_text()


def pinned_image_in_script() -> str:
    match = re.search(r'TFS_IMAGE="\$\{TFS_IMAGE:-([^}]+)\}"', script_text())
    assert match, "serve_tfserving.sh must pin TFS_IMAGE"
    return match.group(1)


# --- the text protos -----------------------------------------------------------------------


def test_models_config_serves_mnist_from_models_mnist_latest_version_only():
    config = parse_file("models.config", ModelServerConfig)
    models = config.model_config_list.config
    assert [m.name for m in models] == [MODEL_NAME]
    model = models[0]
    assert model.base_path == BASE_PATH
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 1


def test_models_config_documents_version_labels_in_a_comment_that_itself_parses():
    text = (CONFIGS / "models.config").read_text()
    label_lines = [
        line.strip().lstrip("#").strip()
        for line in text.splitlines()
        if line.strip().startswith("#") and "version_labels {" in line
    ]
    assert len(label_lines) >= 2
    snippet = "model_config_list { config { name: 'x' " + " ".join(label_lines) + " } }"
    labels = parse(snippet, ModelServerConfig).model_config_list.config[0].version_labels
    assert dict(labels) == {"stable": 1, "canary": 2}


def test_batching_config_is_consistent_for_the_batch_scheduler():
    params = parse_file("batching.config", batching_parameters_class())
    for field in (
        "max_batch_size",
        "batch_timeout_micros",
        "num_batch_threads",
        "max_enqueued_batches",
    ):
        assert params.HasField(field), f"batching.config should set {field}"
        assert params.__getattribute__(field).value > 0
    sizes = list(params.allowed_batch_sizes)
    # TF Serving's rules (session_bundle_config.proto): increasing, last == max_batch_size.
    assert sizes == sorted(set(sizes))
    assert sizes[-1] == params.max_batch_size.value
    # A lone request waits at most this long for company: keep it well under 10 ms.
    assert params.batch_timeout_micros.value <= 10_000


def test_monitoring_config_enables_prometheus_on_the_documented_path():
    config = parse_file("monitoring.config", monitoring_config_class())
    assert config.prometheus_config.enable is True
    assert config.prometheus_config.path == METRICS_PATH


def test_text_format_parsing_rejects_an_unknown_field_so_the_checks_above_have_teeth():
    with pytest.raises(text_format.ParseError, match="max_batch_sise"):
        parse("max_batch_sise { value: 1 }", batching_parameters_class())


# --- the docker command --------------------------------------------------------------------


def test_serve_script_mounts_the_demo_export_and_configs_where_the_configs_expect_them():
    text = script_text()
    assert "source=$MODEL_DIR,target=" + BASE_PATH in text
    assert 'MODEL_DIR="${MODEL_DIR:-$PWD/build/demo/models/mnist}"' in text
    assert "source=$CONFIG_DIR,target=/configs" in text
    assert f"-p {GRPC_PORT}:{GRPC_PORT} -p {REST_PORT}:{REST_PORT}" in text
    for flag, path in CONFIG_FLAGS.items():
        assert f"{flag}={path}" in text
        assert (CONFIGS / Path(path).name).is_file()
    assert "--enable_batching=true" in text


def test_serve_script_pins_an_exact_tensorflow_serving_release():
    image = pinned_image_in_script()
    assert re.fullmatch(r"tensorflow/serving:\d+\.\d+\.\d+", image), image


# --- Kubernetes ----------------------------------------------------------------------------


def test_configmap_carries_the_same_configs_as_the_files():
    configmap = by_kind(manifests("deployment.yaml"), "ConfigMap")
    classes = {
        "models.config": ModelServerConfig,
        "batching.config": batching_parameters_class(),
        "monitoring.config": monitoring_config_class(),
    }
    assert set(configmap["data"]) == set(classes)
    for name, message_class in classes.items():
        assert parse(configmap["data"][name], message_class) == parse_file(name, message_class), (
            f"ConfigMap key {name} differs from configs/{name}"
        )


def test_deployment_container_matches_the_docker_command():
    docs = manifests("deployment.yaml")
    deployment = by_kind(docs, "Deployment")
    configmap = by_kind(docs, "ConfigMap")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == pinned_image_in_script()
    args = dict(arg.split("=", 1) for arg in container["args"])
    assert args["--port"] == str(GRPC_PORT)
    assert args["--rest_api_port"] == str(REST_PORT)
    assert args["--enable_batching"] == "true"
    for flag, path in CONFIG_FLAGS.items():
        assert args[flag] == path
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": GRPC_PORT, "http": REST_PORT}

    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["models"] == BASE_PATH
    assert mounts["configs"] == "/configs"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["configs"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert "persistentVolumeClaim" in volumes["models"]
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]


def test_readiness_probe_asks_tf_serving_for_the_mnist_model_status_on_the_rest_port():
    deployment = by_kind(manifests("deployment.yaml"), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == f"/v1/models/{MODEL_NAME}"
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named.get(probe["port"], probe["port"]) == REST_PORT
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == METRICS_PATH
    assert annotations["prometheus.io/port"] == str(REST_PORT)


def test_service_selects_the_deployment_pods_and_exposes_grpc_and_rest():
    docs = manifests("deployment.yaml")
    deployment, service = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"grpc": (GRPC_PORT, "grpc"), "http": (REST_PORT, "http")}


def test_kserve_inferenceservice_serves_mnist_with_the_tensorflow_predictor_and_same_pin():
    (isvc,) = manifests("inferenceservice.yaml")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    # KServe names the served model after the InferenceService.
    assert isvc["metadata"]["name"] == MODEL_NAME
    predictor = isvc["spec"]["predictor"]["tensorflow"]
    assert predictor["storageUri"].startswith(("gs://", "s3://", "pvc://"))
    assert predictor["storageUri"].rstrip("/").endswith("/mnist")
    assert predictor["runtimeVersion"] == pinned_image_in_script().split(":")[1]


# --- the TF runtime settings the bundled server and the exporter use ----------------------


def test_every_deploy_config_sets_the_served_tf_environment():
    # model_server._tf_env is the one home of these variables; the server, the exporter's
    # verification, the C++-loader child and `make bench` use it, and TF Serving must too.
    from model_server._tf_env import DEFAULTS

    text = script_text()
    deployment = by_kind(manifests("deployment.yaml"), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (isvc,) = manifests("inferenceservice.yaml")
    predictor = isvc["spec"]["predictor"]["tensorflow"]
    for name, value in DEFAULTS.items():
        assert f'{name}="${{{name}:-{value}}}"' in text
        assert f'-e "{name}=${name}"' in text
        assert {"name": name, "value": value} in container["env"]
        assert {"name": name, "value": value} in predictor["env"]


def test_serve_script_passes_the_tf_environment_into_the_container(tmp_path):
    # The printed docker command carries -e TF_ENABLE_ONEDNN_OPTS=1 (and a user's 0 when set).
    import os
    import subprocess

    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"")
    env = {**os.environ, "MODEL_DIR": str(tmp_path), "DOCKER": "/nonexistent-docker"}
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    out = subprocess.run(["bash", str(CONFIGS / "serve_tfserving.sh")], env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert " -e TF_ENABLE_ONEDNN_OPTS=1 " in out
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    out = subprocess.run(["bash", str(CONFIGS / "serve_tfserving.sh")], env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert " -e TF_ENABLE_ONEDNN_OPTS=0 " in out
