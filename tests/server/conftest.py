"""Shared, expensive fixtures for the server tests: tiny exports built once, a running server.

Plain helpers (request builders, `install`, `wait_for`, `free_port`) are in helpers.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from tests.server.helpers import MAX_MSG, install


@pytest.fixture(scope="session")
def export_pool(tmp_path_factory) -> dict[str, Path]:
    """Version directories built once: ``scale1``, ``scale2``, ``badwarmup``, ``warm3``."""
    from tests.server.server_test_models import build_export, write_warmup

    root = tmp_path_factory.mktemp("export_pool")
    pool = {
        "scale1": build_export(root / "scale1", scale=1.0),
        "scale2": build_export(root / "scale2", scale=2.0),
        "warm3": build_export(root / "warm3", scale=3.0, warmup_batches=3),
    }
    bad = build_export(root / "badwarmup", scale=1.0, warmup_batches=0)
    write_warmup(bad, batches=1, bad=True)
    pool["badwarmup"] = bad
    return pool


@pytest.fixture(scope="session")
def installer() -> Callable[[Path, Path], Path]:
    return install


@pytest.fixture(scope="session")
def labelled_server(export_pool, tmp_path_factory):
    """One in-process server for the request tests: model ``m`` with versions 1 (scale 1) and
    2 (scale 2) under policy ``all`` and labels stable=1, canary=2; plus model ``solo``."""
    from model_server import ModelServer, ServerOptions, parse_model_config_text

    base = tmp_path_factory.mktemp("labelled")
    install(export_pool["scale1"], base / "m" / "1")
    install(export_pool["scale2"], base / "m" / "2")
    install(export_pool["scale1"], base / "solo" / "5")
    configs = parse_model_config_text(
        f"""
        model_config_list {{
          config {{
            name: "m" base_path: "{base / "m"}" model_platform: "tensorflow"
            model_version_policy {{ all {{}} }}
            version_labels {{ key: "stable" value: 1 }}
            version_labels {{ key: "canary" value: 2 }}
          }}
          config {{ name: "solo" base_path: "{base / "solo"}" }}
        }}
        """
    )
    server = ModelServer(
        ServerOptions(models=tuple(configs), port=0, rest_api_port=0, file_system_poll_wait_seconds=0)
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def channel(labelled_server):
    ch = grpc.insecure_channel(
        f"127.0.0.1:{labelled_server.ports.grpc}",
        options=[("grpc.max_send_message_length", MAX_MSG), ("grpc.max_receive_message_length", MAX_MSG)],
    )
    yield ch
    ch.close()


@pytest.fixture(scope="session")
def predict_stub(channel):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="session")
def model_stub(channel):
    from tensorflow_serving.apis import model_service_pb2_grpc

    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="session")
def rest_base(labelled_server) -> str:
    return f"http://127.0.0.1:{labelled_server.ports.rest}"
