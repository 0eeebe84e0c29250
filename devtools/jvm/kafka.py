"""A real Apache Kafka KRaft cluster (1 or 3 combined nodes) on loopback, for tests and developers.

Why not Docker or testcontainers: our machines have no Docker daemon. The broker jars come from
Maven Central (`compose/kafka/pom.xml`) into a cache outside git, and each node is a plain
`kafka.Kafka` JVM started from here. Stdlib only, so `compose/kafka/local-kafka` runs without the
venv; confluent-kafka is used for the readiness check when it is importable.

    python -m devtools.jvm.kafka fetch              # resolve the jars into the cache
    python -m devtools.jvm.kafka start --nodes 3    # run a cluster until Ctrl-C / SIGTERM
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devtools.jvm.cli import fetch_or_start_parser, run_fetch_or_start, serve
from devtools.jvm.process import (
    REPO_ROOT,
    HarnessError,
    JvmProcess,
    Server,
    cache_dir,
    cached_dir,
    find_tool,
    free_ports,
    maven_copy_dependencies,
    port_open,
    stop_all,
    tail,
    wait_until,
)

__all__ = ["KAFKA_VERSION", "HarnessError", "KafkaCluster", "fetch_libs", "libs_dir"]

KAFKA_VERSION = "4.1.1"
COMPOSE_DIR = REPO_ROOT / "compose" / "kafka"
START_TIMEOUT = 90.0


def libs_dir() -> Path:
    """Where the broker's jars are cached: one directory per Kafka version."""
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def fetch_libs() -> Path:
    """Resolve the broker's jars with Maven unless the cache already has them."""
    return cached_dir(libs_dir(), lambda out: maven_copy_dependencies(COMPOSE_DIR / "pom.xml", out))


@dataclass
class _Node:
    """One combined broker+controller: its ports and directory survive a stop and a restart."""

    node_id: int
    broker_port: int
    controller_port: int
    home: Path
    process: JvmProcess | None = None

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "server.log"

    @property
    def stdout_path(self) -> Path:
        return self.home / "logs" / "stdout.log"


BROKER_GC: Final = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
)
"""The collector settings ``kafka-run-class.sh`` gives a broker (KAFKA_JVM_PERFORMANCE_OPTS).
Started as a bare ``java`` command the broker got G1's 200 ms default pause goal instead, and it
used it: young pauses of up to 180 ms on this 2-core VM, seen in its gc.log at the very moments
the latency benchmark's slowest alerts were in flight. The gc.log stays in the node's logs."""


class KafkaCluster(Server):
    """A KRaft cluster of `nodes` combined broker+controller JVMs, data in a temporary directory.

    Node `i` (0-based index) has `node.id` i + 1. Logs stay readable through `log_tail` until
    `stop()`, which deletes the directory unless `keep_logs` is set (then only data is deleted).
    """

    def __init__(self, nodes: int = 1, *, keep_logs: bool = False, heap: str | None = None):
        if nodes not in (1, 3):
            raise ValueError(f"nodes must be 1 or 3, not {nodes}")
        self._size = nodes
        self._keep_logs = keep_logs
        # Three JVMs share two cores and the test process; each needs far less than 512 MB.
        self._heap = heap or ("512m" if nodes == 1 else "384m")
        # C1 only: three brokers JIT-compiling at once on two cores start in ~12 s instead of
        # ~18 s. The 3-node cluster exists for failover tests, not throughput, so it pays that;
        # a single node keeps the full JIT for the benchmarks.
        self._broker_jit = [] if nodes == 1 else ["-XX:TieredStopAtLevel=1"]
        self._nodes: list[_Node] = []
        self._workdir: Path | None = None
        self._libs: Path | None = None

    # -- public surface -------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """Every node's PLAINTEXT address, so clients still bootstrap when one node is down."""
        if not self._nodes:
            raise HarnessError("the cluster is not started")
        return ",".join(f"127.0.0.1:{node.broker_port}" for node in self._nodes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def workdir(self) -> Path | None:
        return self._workdir

    @staticmethod
    def node_id(index: int) -> int:
        """The `node.id` of the node at `index`."""
        return index + 1

    @staticmethod
    def index_of(node_id: int) -> int:
        """The index of the node whose `node.id` is `node_id` (e.g. a partition leader)."""
        return node_id - 1

    def start(self) -> KafkaCluster:
        """Format and start every node; return once all brokers answer metadata requests."""
        if self._nodes:
            raise HarnessError("the cluster is already started")
        try:
            self._libs = fetch_libs()
            self._workdir = Path(tempfile.mkdtemp(prefix="auditstream-kafka-"))
            self._nodes = self._plan_nodes(self._workdir)
            for node in self._nodes:
                self._write_config(node)
            self._format(self._random_cluster_id())
            for node in self._nodes:
                self._launch(node)
            self._wait_ready(self._nodes)
        except HarnessError as err:
            # The logs are deleted by stop(): put their ends into the error first.
            logs = "\n".join(
                f"--- node {n.node_id} ---\n{self.log_tail(i, 30)}"
                for i, n in enumerate(self._nodes)
            )
            self.stop()
            raise HarnessError(f"{err}\n{logs}") from err
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node and delete the data. Safe to call more than once.

        With `keep_logs` (the CLI) nodes get SIGTERM and up to 20 s for a clean shutdown, so the
        logs end properly. Otherwise they are SIGKILLed: the data is deleted a moment later, and
        three KRaft nodes stopping together can spend 20 s waiting for a quorum that is gone.
        """
        running = [node.process for node in self._nodes if node.process is not None]
        if self._keep_logs:
            stop_all(running, timeout=20)
        else:
            for process in running:
                process.stop(kill=True)
        if self._workdir is not None:
            if self._keep_logs:
                for node in self._nodes:
                    shutil.rmtree(node.home / "data", ignore_errors=True)
            else:
                shutil.rmtree(self._workdir, ignore_errors=True)
        self._nodes = []
        self._workdir = None

    def stop_node(self, index: int, *, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop one node: SIGTERM (controlled shutdown) or, with `kill=True`, SIGKILL.

        Its ports, data and logs stay, for `start_node`; `check_alive` no longer watches it.
        """
        node = self._node(index)
        if node.process is None or not node.process.running:
            raise HarnessError(f"node {index} is not running")
        node.process.stop(kill=kill, timeout=timeout)
        node.process = None

    def start_node(self, index: int) -> None:
        """Restart a stopped node with the same data and ports; wait until it is registered."""
        node = self._node(index)
        if node.process is not None and node.process.running:
            raise HarnessError(f"node {index} is already running")
        self._launch(node)
        self._wait_ready([node])

    def gc_log(self, index: int = 0) -> Path:
        """The node's JVM garbage-collector log (``-Xlog:gc``, wall-clock decorated)."""
        return self._node(index).home / "logs" / "gc.log"

    def pid(self, index: int = 0) -> int | None:
        """The node's JVM process id (benchmarks account its CPU time)."""
        process = self._node(index).process
        return None if process is None else process.pid

    def running(self, index: int) -> bool:
        process = self._node(index).process
        return process is not None and process.running

    def check_alive(self) -> None:
        """Raise HarnessError when a node that should be running has exited on its own."""
        for node in self._nodes:
            if node.process is not None:
                node.process.check_alive()

    def log_tail(self, index: int = 0, lines: int = 60) -> str:
        """The end of a node's broker log (plus the JVM's own output if it has any)."""
        node = self._node(index)
        text = tail(node.log_path, lines)
        if node.stdout_path.exists() and node.stdout_path.stat().st_size:
            text += f"\n--- JVM stdout/stderr ---\n{tail(node.stdout_path, 20)}"
        return text

    def log_paths(self) -> list[Path]:
        return [node.log_path for node in self._nodes]

    # -- internals ------------------------------------------------------------------------------

    def _node(self, index: int) -> _Node:
        if not 0 <= index < len(self._nodes):
            raise HarnessError(f"no node {index} in a started cluster of {self._size}")
        return self._nodes[index]

    def _plan_nodes(self, workdir: Path) -> list[_Node]:
        ports = free_ports(2 * self._size)
        return [
            _Node(
                node_id=self.node_id(i),
                broker_port=ports[2 * i],
                controller_port=ports[2 * i + 1],
                home=workdir / f"node-{self.node_id(i)}",
            )
            for i in range(self._size)
        ]

    def _write_config(self, node: _Node) -> None:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self._nodes)
        internal_rf = min(3, self._size)
        internal_min_isr = 2 if self._size >= 3 else 1
        settings = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{node.broker_port},"
                f"CONTROLLER://127.0.0.1:{node.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.broker_port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": node.home / "data",
            "num.partitions": 1,
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": 0,
            # Fewer internal partitions: the first group or transaction waits for all of them.
            "offsets.topic.num.partitions": 5,
            "offsets.topic.replication.factor": internal_rf,
            "transaction.state.log.num.partitions": 5,
            "transaction.state.log.replication.factor": internal_rf,
            "transaction.state.log.min.isr": internal_min_isr,
            "share.coordinator.state.topic.replication.factor": internal_rf,
            "share.coordinator.state.topic.min.isr": internal_min_isr,
            # A killed node is fenced after 3 s instead of 9 s: failover tests stay short.
            "broker.session.timeout.ms": 3000,
            "broker.heartbeat.interval.ms": 500,
        }
        node.home.mkdir(parents=True, exist_ok=True)
        node.config.write_text(
            "".join(f"{key}={value}\n" for key, value in settings.items()), encoding="utf-8"
        )

    def _java_argv(self, logs_dir: Path, *args: str, jvm: tuple[str, ...] = ()) -> list[str]:
        """A `java` command line on the cached classpath. `jvm` defaults to short-lived-tool
        flags (C1 only, serial GC, small heap): StorageTool runs for a second, JIT is wasted."""
        if self._libs is None:
            raise HarnessError("the broker jars are not resolved yet")
        return [
            find_tool("java"),
            *(jvm or ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={COMPOSE_DIR / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={logs_dir}",
            "-cp",
            f"{self._libs}/*",
            *args,
        ]

    def _random_cluster_id(self) -> str:
        assert self._workdir is not None
        argv = self._java_argv(self._workdir, "kafka.tools.StorageTool", "random-uuid")
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        lines = result.stdout.split()
        if result.returncode != 0 or not lines:
            raise HarnessError(f"StorageTool random-uuid failed:\n{result.stdout}{result.stderr}")
        return lines[-1]

    def _format(self, cluster_id: str) -> None:
        """Format every node's storage in parallel (one short JVM each)."""
        runs = []
        for node in self._nodes:
            argv = self._java_argv(
                node.home / "logs",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(node.config),
            )
            runs.append(
                subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            )
        failures = []
        for node, run in zip(self._nodes, runs, strict=True):
            output, _ = run.communicate(timeout=60)
            if run.returncode != 0:
                failures.append(f"node {node.node_id}: {output}")
        if failures:
            raise HarnessError("StorageTool format failed:\n" + "\n".join(failures))

    def _launch(self, node: _Node) -> None:
        gc_log = f"-Xlog:gc:file={node.home / 'logs' / 'gc.log'}:time,uptime"
        heap = (f"-Xms{self._heap}", f"-Xmx{self._heap}")  # no resizing while measured
        jvm = (*heap, *BROKER_GC, gc_log, *self._broker_jit)
        argv = self._java_argv(node.home / "logs", "kafka.Kafka", str(node.config), jvm=jvm)
        node.process = JvmProcess(
            f"kafka node {node.node_id}", argv, log_path=node.stdout_path, cwd=node.home
        )
        node.process.start()

    def _wait_ready(self, nodes: list[_Node]) -> None:
        """Wait until each node listens, then until the cluster's metadata lists all of them."""

        def alive() -> None:
            for node in nodes:
                if node.process is not None:
                    node.process.check_alive()

        for node in nodes:
            wait_until(
                functools.partial(port_open, node.broker_port),
                timeout=START_TIMEOUT,
                what=f"kafka node {node.node_id} to listen on {node.broker_port}",
                alive=alive,
            )
        expected = {node.node_id for node in nodes}
        registered = self._registered_brokers_probe(nodes)
        wait_until(
            lambda: expected <= registered(),
            timeout=START_TIMEOUT,
            what=f"brokers {sorted(expected)} in the cluster metadata",
            alive=alive,
        )

    @staticmethod
    def _registered_brokers_probe(nodes: list[_Node]) -> Callable[[], set[int]]:
        """A function listing the broker ids in the metadata, asked through confluent-kafka when
        it is importable (the venv), else the nodes whose log says the server started."""
        try:
            from confluent_kafka import KafkaException  # noqa: PLC0415 - optional dependency
            from confluent_kafka.admin import AdminClient  # noqa: PLC0415
        except ImportError:

            def from_logs() -> set[int]:
                started = "Kafka Server started"
                return {node.node_id for node in nodes if started in tail(node.log_path, 400)}

            return from_logs

        bootstrap = ",".join(f"127.0.0.1:{node.broker_port}" for node in nodes)
        # One client for the whole wait, silent: refused connections are expected while it runs.
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})

        def from_metadata() -> set[int]:
            try:
                return set(admin.list_topics(timeout=2).brokers)
            except KafkaException:
                return set()

        return from_metadata


# -- command line ---------------------------------------------------------------------------------


def _serve(nodes: int) -> int:
    cluster = KafkaCluster(nodes, keep_logs=True)
    return serve(
        cluster,
        name=f"kafka {KAFKA_VERSION}: {nodes} node(s)",
        address=lambda: cluster.bootstrap,
        logs=lambda: f"logs in {cluster.workdir}",
    )


def main(argv: list[str] | None = None) -> int:
    parser, start = fetch_or_start_parser(
        "local-kafka",
        __doc__.splitlines()[0],
        fetch_help="resolve the broker jars into the cache and print its path",
        start_help="run a cluster in the foreground until Ctrl-C",
    )
    start.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    args = parser.parse_args(argv)
    return run_fetch_or_start(args, fetch_libs, lambda: _serve(args.nodes))


if __name__ == "__main__":
    sys.exit(main())
