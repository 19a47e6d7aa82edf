"""The run file: how the CLI finds a running node and the config it runs with."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from noosphere import runfile
from noosphere.cli.target import locate
from noosphere.runfile import RunInfo


@pytest.fixture
def node_process() -> Iterator[int]:
    """A process standing in for a running node (its command line names noosphere)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "noosphere-stand-in"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=30)


def test_a_live_node_is_asked_and_a_stopped_one_still_names_its_config(
    tmp_path: Path, node_process: int
) -> None:
    config = tmp_path / "pg.yaml"
    config.write_text(
        "storage:\n  backend: postgres\nauth:\n  admin_token: ${NOOSPHERE_TEST_TOKEN:-from-config}\n"
    )
    runfile.write(tmp_path, RunInfo(node_process, "http://127.0.0.1:4001", str(config), "postgres"))
    target = locate(None, tmp_path)
    assert (target.url, target.config) == ("http://127.0.0.1:4001", config)
    assert target.admin_token() == "from-config"
    runfile.stopped(tmp_path, node_process)
    stopped = locate(None, tmp_path)
    assert stopped.url is None and stopped.config == config  # offline, on the node's own store
    assert locate(None, tmp_path, "http://elsewhere:1").url == "http://elsewhere:1"


def test_a_dead_process_or_a_broken_file_means_no_node(tmp_path: Path) -> None:
    runfile.write(tmp_path, RunInfo(2**22 + 12345, "http://127.0.0.1:4001", None, "sqlite"))
    assert locate(None, tmp_path).url is None
    (tmp_path / runfile.RUN_FILE).write_text("{not json")
    assert runfile.read(tmp_path) is None
    assert locate(None, tmp_path).url is None


def test_a_process_that_took_a_dead_nodes_id_is_not_the_node(tmp_path: Path) -> None:
    """pid 1 is alive but is no noosphere node: a file a kill -9 left behind does not fool the CLI."""
    runfile.write(tmp_path, RunInfo(1, "http://127.0.0.1:4001", None, "sqlite"))
    assert locate(None, tmp_path).url is None


def test_stopping_leaves_another_processes_file_alone(tmp_path: Path) -> None:
    runfile.write(tmp_path, RunInfo(os.getpid(), "http://127.0.0.1:4001", None, "sqlite"))
    runfile.stopped(tmp_path, os.getpid() + 1)
    still = runfile.read(tmp_path)
    assert still is not None and still.pid == os.getpid()
