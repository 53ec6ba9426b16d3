"""``import serving_client`` and a first explain never import TensorFlow (checked in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    start = time.perf_counter()
    import serving_client
    import serving_client.render
    import serving_client.cli
    import_seconds = time.perf_counter() - start
    after_import = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_serving", "keras"))
    import numpy as np
    with serving_client.ServingClient(sys.argv[1], "mnist", timeout=10.0) as client:
        explanation = client.explain(np.ones((2, 8, 8, 1), np.float32))
        metadata = client.metadata()
        client.status()
    after_call = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_serving", "keras"))
    print(json.dumps({
        "import_seconds": import_seconds,
        "after_import": after_import,
        "after_call": after_call,
        "saliency_shape": list(explanation.saliency.shape),
        "signatures": sorted(metadata.signatures),
    }))
    """
)


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_import_and_first_explain_do_not_import_tensorflow(serving):
    result = run("-c", SCRIPT, serving.target)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["after_import"] == []
    assert report["after_call"] == []
    assert report["saliency_shape"] == [2, 8, 8]
    assert report["signatures"] == ["explain", "serving_default"]
    # Reported, not asserted tightly: the figure in the README comes from here.
    print(f"import serving_client (+render, cli): {report['import_seconds'] * 1000:.0f} ms")
    assert report["import_seconds"] < 10


def test_import_does_not_load_pillow():
    result = run("-c", "import sys, serving_client; print('PIL' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
