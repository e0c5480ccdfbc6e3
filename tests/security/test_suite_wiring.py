"""The security suite sees the same app as the API suite."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_the_app_answers_and_refuses_a_keyless_request(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/municipalities").status_code == 401
