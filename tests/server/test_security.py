"""Security: TLS and mutual TLS on gRPC, loopback by default, request fields never reach files,
request data never unpickled or evaluated, Keras safe_mode at export."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.server.helpers import images, predict_request

ROOT = Path(__file__).parents[2]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, bytes]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, both
    signed by the CA, plus a second CA that signed nothing we trust."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who, ca in (("server", "ca"), ("client", "ca"), ("rogue", "other_ca")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}",
                 "-keyout", f"{who}.key", "-out", f"{who}.csr", cwd=d)  # fmt: skip
        ext = "server.ext" if who == "server" else "client.ext"
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", f"{who}.pem", cwd=d)  # fmt: skip
    return {p.name: p.read_bytes() for p in d.iterdir() if p.suffix in (".pem", ".key")}


def _tls_server(export_pool, tmp_path, pki, *, client_verify: bool):
    from model_server import ModelServer, ServerOptions, SslOptions
    from tests.server.helpers import install

    base = tmp_path / "m"
    install(export_pool["scale1"], base / "1")
    ssl = SslOptions(
        server_key=pki["server.key"].decode(),
        server_cert=pki["server.pem"].decode(),
        custom_ca=pki["ca.pem"].decode(),
        client_verify=client_verify,
    )
    return ModelServer(
        ServerOptions.single_model("m", base, port=0, rest_api_port=None, file_system_poll_wait_seconds=0, ssl=ssl)
    )


@pytest.mark.integration
@pytest.mark.e2e
def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_ca(export_pool, tmp_path, pki):
    from serving_client import ServingClient, UnavailableError

    with _tls_server(export_pool, tmp_path, pki, client_verify=True) as server:
        target = f"127.0.0.1:{server.ports.grpc}"
        with ServingClient(
            target, "m", timeout=20, root_certificates=pki["ca.pem"],
            private_key=pki["client.key"], certificate_chain=pki["client.pem"],
        ) as client:  # fmt: skip
            prediction = client.predict(images(2))
        assert prediction.logits.shape == (2, 3) and prediction.model_version == 1

        refused = {
            "no client certificate": dict(root_certificates=pki["ca.pem"]),
            "certificate from another CA": dict(
                root_certificates=pki["ca.pem"], private_key=pki["rogue.key"], certificate_chain=pki["rogue.pem"]
            ),
            "server not trusted by the client": dict(
                root_certificates=pki["other_ca.pem"], private_key=pki["client.key"], certificate_chain=pki["client.pem"]
            ),
        }
        for why, tls in refused.items():
            with ServingClient(target, "m", timeout=3, retries=1, **tls) as client:
                with pytest.raises(UnavailableError):
                    client.predict(images(1))
            assert why
        # Plaintext gRPC against the TLS port fails too.
        with grpc.insecure_channel(target) as channel:
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            with pytest.raises(grpc.RpcError) as info:
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                    predict_request(images=images(1)), timeout=3
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.integration
@pytest.mark.e2e
def test_server_only_tls_needs_just_the_ca_on_the_client(export_pool, tmp_path, pki):
    from serving_client import ServingClient

    with _tls_server(export_pool, tmp_path, pki, client_verify=False) as server:
        with ServingClient(f"127.0.0.1:{server.ports.grpc}", "m", timeout=20, root_certificates=pki["ca.pem"]) as client:
            assert client.explain(images(1), target_class=2).saliency.shape == (1, 4, 4)


def test_ssl_config_file_is_tf_servings_text_format(tmp_path, pki):
    from model_server.cli import build_parser, options_from_args

    config = tmp_path / "ssl.config"
    config.write_text(
        f"server_key: {json.dumps(pki['server.key'].decode())}\n"
        f"server_cert: {json.dumps(pki['server.pem'].decode())}\n"
        f"custom_ca: {json.dumps(pki['ca.pem'].decode())}\n"
        "client_verify: true\n"
    )
    options = options_from_args(build_parser().parse_args(["--model_base_path=/m", f"--ssl_config_file={config}"]))
    assert options.ssl.client_verify and options.ssl.custom_ca.startswith("-----BEGIN CERTIFICATE")
    assert "PRIVATE KEY" not in repr(options)  # the key never reaches logs
    config.write_text('server_key: "k" server_cert: "c" client_verify: true')
    with pytest.raises(ValueError, match="client_verify is true but custom_ca is empty"):
        options_from_args(build_parser().parse_args(["--model_base_path=/m", f"--ssl_config_file={config}"]))
    config.write_text('server_key: "k"')
    with pytest.raises(ValueError, match="needs both server_key and server_cert"):
        options_from_args(build_parser().parse_args(["--model_base_path=/m", f"--ssl_config_file={config}"]))


# ---- binding, names, request data ----------------------------------------------------------


@pytest.mark.integration
@pytest.mark.e2e
def test_both_apis_bind_loopback_by_default(labelled_server):
    from model_server import ServerOptions
    from model_server.cli import build_parser

    assert ServerOptions(models=()).host == "127.0.0.1"
    assert build_parser().parse_args([]).host == "127.0.0.1"
    assert labelled_server._rest.server_address[0] == "127.0.0.1"
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    except OSError:
        addresses = set()
    for address in sorted(a for a in addresses if not a.startswith("127.")):
        for port in (labelled_server.ports.grpc, labelled_server.ports.rest):
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((address, port)) != 0, f"port {port} answers on {address}"


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.parametrize("name", ["../../etc", "../m", "/etc/passwd", "m/../m", "..", "m\x00"])
def test_model_names_are_only_dictionary_keys(predict_stub, rest_base, name):
    # Names and labels select from the configured models; they never become paths.
    with pytest.raises(grpc.RpcError) as info:
        predict_stub.Predict(predict_request(name=name, images=images(1)), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == f"Servable not found for request: Latest({name})"
    quoted = urllib.request.quote(name, safe="")
    request = urllib.request.Request(
        f"{rest_base}/v1/models/{quoted}:predict", data=json.dumps({"instances": images(1).tolist()}).encode()
    )
    with pytest.raises(urllib.error.HTTPError) as http_info:
        urllib.request.urlopen(request, timeout=10)
    assert http_info.value.code == 404
    with pytest.raises(grpc.RpcError) as info:
        predict_stub.Predict(predict_request(label="../1", images=images(1)), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_request_data_is_never_unpickled_or_evaluated():
    # Grep-level assurance over every module that touches request or user data.
    risky = re.compile(r"\b(pickle\.loads?|eval|exec|marshal\.loads?|yaml\.load|yaml\.unsafe_load|"
                       r"shelve\.open|dill\.|cloudpickle)\s*\(")  # fmt: skip
    np_load = re.compile(r"\bnp\.load\(([^)]*)\)")
    offenders = []
    for package in ("model_server", "serving_client", "exporter", "examples"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in risky.finditer(text)]
            offenders += [
                f"{path.relative_to(ROOT)}: {m.group(0)}"
                for m in np_load.finditer(text)
                if "allow_pickle=False" not in m.group(1)
            ]
    # examples/mnist/data.py reads the MNIST pickle shipped in a wheel with an allow-list unpickler
    # (RestrictedUnpickler.find_class): never request data, and not `pickle.load` itself.
    assert offenders == []


def test_npy_images_are_loaded_without_pickles(tmp_path):
    from serving_client.render import load_image

    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        load_image(path)


# ---- Keras safe_mode at export -------------------------------------------------------------


@pytest.mark.integration
def test_lambda_layers_need_unsafe_deserialization_and_get_a_warning(tmp_path, caplog):
    import keras

    from exporter.cli import main

    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    path = tmp_path / "lambda.keras"
    model.save(path)
    out = tmp_path / "models"
    assert main(["--model", str(path), "--output", str(out), "-q"]) == 1
    assert not out.exists() or not any(p.name.isdigit() for p in out.iterdir())
    with caplog.at_level("WARNING", logger="exporter"):
        assert main(["--model", str(path), "--output", str(out), "--unsafe-deserialization", "-q"]) == 0
    assert (out / "1" / "saved_model.pb").is_file()
    assert any("safe_mode off" in r.getMessage() for r in caplog.records)
