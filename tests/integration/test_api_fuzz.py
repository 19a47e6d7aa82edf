"""The node's API against its own OpenAPI description, fuzzed by schemathesis: every route, with
valid and malformed inputs, as the admin and with a token that is no one's. No answer is a 5xx,
and every error is a JSON error the description documents for that route.

``NOOSPHERE_FUZZ_EXAMPLES`` sets how many cases each route gets (the short form here; ``make
soak`` runs a longer one)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.server.app import create_app
from noosphere.testing import FakeModel
from tests.integration.conftest import Live, serve_live

EXAMPLES = int(os.environ.get("NOOSPHERE_FUZZ_EXAMPLES", "12"))
# Served as streams that only end when the client leaves; fuzzed elsewhere (test_mcp, test_hostile_input).
STREAMING = r"^/mcp$"
WAITS = {"timeout_seconds", "wait_seconds"}  # bounded here so one case never holds the run


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, minilm: MiniLMEmbedder) -> Iterator[Live]:
    data: Path = tmp_path_factory.mktemp("fuzz") / "node"
    backend = ("fake-worker", FakeModel("fake", reply="fuzzed"))
    with serve_live(
        data,
        minilm,
        backends=[backend],
        pool={"checker": False},
        scheduler={"enabled": False},
        bus={"max_wait_seconds": 1, "request_timeout_seconds": 1},
    ) as live:
        yield live


def _schema() -> Any:
    """The node's own OpenAPI description, as ``GET /openapi.json`` serves it."""
    spec = create_app(load_settings(None, data_dir=Path(tempfile.mkdtemp()) / "spec")).openapi()
    loaded = schemathesis.openapi.from_dict(spec)
    loaded.config.update(request_timeout=30)
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES, database="none"
    )
    return loaded.exclude(path_regex=STREAMING)


schema = _schema()


def _bounded(case: Any) -> None:
    if isinstance(case.body, dict):
        for key in WAITS & set(case.body):
            if isinstance(case.body[key], int | float) and not isinstance(case.body[key], bool):
                case.body[key] = min(max(case.body[key], 0), 1)


def _header(response: Any, name: str) -> str:
    value = response.headers.get(name) or ""
    return str(value[0] if isinstance(value, list) and value else value)


def _documented_error(case: Any, response: Any) -> None:
    """A 4xx the route documents, as ``{"error": {"code", "message", "type"}}``."""
    status = response.status_code
    if case.method.upper() != case.operation.method.upper():  # a method the route does not take
        assert status == 405 and _header(response, "allow"), (case.method, case.path, status)
    else:
        documented = case.operation.definition.raw.get("responses", {})
        assert str(status) in documented, f"{case.method} {case.path} answered an undocumented {status}"
    assert _header(response, "content-type").startswith("application/json"), response.text[:200]
    error = response.json().get("error")
    assert isinstance(error, dict) and {"code", "message", "type"} <= set(error), response.text[:200]


FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=EXAMPLES)


@schema.parametrize()
@FUZZ
def test_no_route_fails_or_answers_an_undocumented_error(case: Any, fuzzed: Live) -> None:
    _bounded(case)
    response = case.call(base_url=fuzzed.url, headers={"Authorization": f"Bearer {fuzzed.admin_token}"})
    assert response.status_code < 500 or (
        response.status_code == 504 and case.path == "/api/v1/bus/requests"
    ), (
        case.method,
        case.path,
        response.status_code,
        response.text[:300],
    )
    if response.status_code >= 400:
        _documented_error(case, response)


@schema.parametrize()
@FUZZ
def test_a_token_that_is_no_ones_is_refused_everywhere_it_is_needed(case: Any, fuzzed: Live) -> None:
    _bounded(case)
    response = case.call(
        base_url=fuzzed.url, headers={"Authorization": "Bearer ns_not_a_token_of_this_node_0"}
    )
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        _documented_error(case, response)
