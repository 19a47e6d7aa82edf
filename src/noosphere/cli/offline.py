"""Offline administration: the node's own routes, served in this process on its data directory,
for a CLI command when no node runs there. The store opens with the config the node runs with
(``target.py``); no background loop, worker or peer connection starts (``background=False``), so
a command does its one thing and leaves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from noosphere.cli.client import Params, answer_of, fail, headers_for, query_string
from noosphere.cli.output import console
from noosphere.cli.target import Target
from noosphere.config import load_settings
from noosphere.errors import NoosphereError
from noosphere.node import Node
from noosphere.server.app import create_app


class Offline:
    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def call(
        self, method: str, path: str, body: Any = None, params: Params | None = None, timeout: float = 60
    ) -> Any:
        response = self.client.request(method, path + query_string(params), json=body, headers=self.headers)
        return answer_of(response.status_code, response.content)


def _announce(node: Node) -> None:
    if node.new_admin_token:
        console.print(f"created admin token (saved in {node.settings.data_dir / 'admin-token'})")


@contextmanager
def offline_api(target: Target, token: str | None) -> Iterator[Offline]:
    try:
        settings = load_settings(target.config, data_dir=target.data_dir)
        app = create_app(settings, on_ready=_announce, background=False)
        with TestClient(app, base_url="http://offline", raise_server_exceptions=False) as client:
            yield Offline(client, headers_for(token or target.admin_token()))
    except NoosphereError as exc:  # the store or config could not be opened
        fail(exc.code, exc.message)


__all__ = ["Offline", "offline_api"]
