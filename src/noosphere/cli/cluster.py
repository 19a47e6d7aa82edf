"""``noosphere cluster``: run several node processes as one node on this machine (``up``) and
see the processes of a running cluster (``status``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, TokenOpt, call
from noosphere.cli.output import console, emit_json

cluster_app = typer.Typer(help="Several node processes behaving as one node (docs/cluster.md).")


@cluster_app.command("up")
def up(
    processes: Annotated[int, typer.Option("--processes", min=1, max=64, help="Node processes.")] = 2,
    config: ConfigOpt = None,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", envvar="NOOSPHERE_DATA_DIR", help="The cluster's directory.")
    ] = Path(".noosphere-cluster"),
    port: Annotated[int, typer.Option(help="Port of the first process; the others follow.")] = 3099,
    host: Annotated[str, typer.Option(help="Bind address of every process.")] = "127.0.0.1",
    local_workers: Annotated[
        int, typer.Option(min=0, help="How many processes attach a local llama.cpp worker.")
    ] = 1,
) -> None:
    """Start the embedded PostgreSQL, a NATS server and N node processes on consecutive ports, all
    one node. Restarts a process that dies; Ctrl-C stops everything."""
    import logging
    import signal

    from noosphere import logs
    from noosphere.cluster.launcher import Launcher
    from noosphere.errors import NoosphereError

    logs.configure("text")
    logging.getLogger("noosphere.cluster").setLevel(logging.INFO)
    launcher = Launcher(data_dir, processes, port, config, min(local_workers, processes), host)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        launcher.start()
        console.print(f"cluster up in {launcher.directory}: {processes} processes")
        for member in launcher.members:
            worker = " (local worker)" if member.local_worker else ""
            console.print(f"  process {member.index}  {member.url}{worker}")
        console.print(f"  admin token in {launcher.directory / 'admin-token'}")
        console.print(f"  workers join with --join ws://{host}:{port} (repeat for each process)")
        console.print("  Ctrl-C to stop")
        launcher.watch()
    except KeyboardInterrupt:
        pass
    except (NoosphereError, RuntimeError) as exc:
        console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    finally:
        launcher.stop()
        console.print("cluster stopped")


@cluster_app.command("status")
def status(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None, json_out: JsonOpt = False
) -> None:
    """The processes of the running cluster, how long since each was heard from, and who runs
    the once-per-cluster work."""
    report = call(config, data_dir, token, "GET", "/api/v1/cluster")
    if json_out:
        emit_json(report)
        return
    console.print(f"node {report['node']}; this answer from process {report['process']['name']}")
    for process in report["processes"]:
        console.print(
            f"  {process['name']:<28} {process['id']}  up {process['age_seconds']:.0f}s, "
            f"seen {process['silent_seconds']:.1f}s ago, {process['url']}"
        )
    for name, holder in sorted(report["leases"].items()):
        console.print(f"  lease {name}: {holder}")
