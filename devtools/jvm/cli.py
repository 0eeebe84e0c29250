"""The command lines of the harnesses (`python -m devtools.jvm.kafka|registry fetch|start`).

Both have the same two commands: `fetch` fills the download cache and prints its path, `start`
runs the server in the foreground, prints its address on stdout and stops it on SIGINT, SIGTERM
or SIGHUP. Stdlib only, like the rest of the harness.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from devtools.jvm.process import HarnessError, Server


class StopRequested(Exception):
    """A command-line server got SIGINT, SIGTERM or SIGHUP and should stop its JVMs and exit."""


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    # Later signals are ignored: the first one is already unwinding into the JVMs' stop().
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise StopRequested(signal.Signals(signum).name)


def raise_on_stop_signals() -> None:
    """Turn the stop signals into StopRequested, so they also interrupt a start still waiting.

    For the command lines only: a library must not take over a process's signal handlers.
    """
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _raise_stop)


def serve(server: Server, *, name: str, address: Callable[[], str], logs: Callable[[], str]) -> int:
    """Start `server` (a KafkaCluster or SchemaRegistry), print its address, and keep it running
    until a stop signal.

    `name` heads the ready line on stderr; `address` and `logs` are asked once it has started.
    """
    started = time.monotonic()
    try:
        server.start()
        print(address(), flush=True)
        print(
            f"{name} ready in {time.monotonic() - started:.1f}s; {logs()}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        while True:
            server.check_alive()
            time.sleep(1)
    finally:
        server.stop()


def fetch_or_start_parser(
    prog: str, description: str, *, fetch_help: str, start_help: str
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The `fetch` / `start` parser and its `start` subparser, for server-specific options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help=fetch_help)
    return parser, commands.add_parser("start", help=start_help)


def run_fetch_or_start(
    args: argparse.Namespace, fetch: Callable[[], Path], start: Callable[[], int]
) -> int:
    """Run `args.command`; the exit status is 0 when `start` was stopped by a signal."""
    # Signals unwind through `finally` blocks: JVMs are stopped, half downloads removed.
    raise_on_stop_signals()
    try:
        if args.command == "fetch":
            print(fetch())
            return 0
        return start()
    except StopRequested as stop:
        print(f"{stop}: stopped", file=sys.stderr, flush=True)
        return 0 if args.command == "start" else 1
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
