"""`make soak` in miniature (20 s), so the soak harness itself cannot rot.

The full run (`make soak`, 10 minutes) also judges RSS growth; 20 s is too short for that
figure to mean anything, so only the outcomes are checked here.
"""

from __future__ import annotations

import io

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_a_short_soak_has_no_failed_valid_request_and_only_clear_refusals(tmp_path):
    from tests.soak import run_soak

    out = io.StringIO()
    run_soak(20, 2, tmp_path, out=out)
    text = out.getvalue()
    print(text)
    assert "server alive: True" in text
    assert "valid requests failed: 0; invalid ones without a clear error: 0;" in text
    for kind in ("valid_grpc", "valid_rest", "bomb_grpc", "bomb_rest", "garbage"):
        line = next(line for line in text.splitlines() if line.startswith(kind + " "))
        assert line.split(maxsplit=1)[1] != "{}", f"no {kind} request was sent in 20 s"
