"""A real ClickHouse cluster on one machine: Debian's ZooKeeper and shards x replicas servers.

For the cluster tests (and anyone who wants to try `JOURNEY_CLICKHOUSE_CLUSTER` without
Docker). ZooKeeper 3.8 runs from Debian's jars with `java` directly (its `zkServer.sh` insists
on /etc/zookeeper/conf); each clickhouse-server 18.16 gets its own directory, ports, `macros`
(shard, replica), the `remote_servers` entry of the cluster (`internal_replication`: the
Replicated tables copy between replicas, the Distributed table writes one replica per shard)
and the `distributed_ddl` queue that `ON CLUSTER` statements go through. Everything binds to
127.0.0.1; ports are picked free once and kept, so a node or ZooKeeper stopped by a fault test
comes back where the others expect it. ~450 MB for 2 x 2 servers and ZooKeeper (DESIGN.md §5).
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from journey.local import (
    HOST,
    LocalService,
    ServiceError,
    _place,
    _spawn,
    _started,
    free_port,
    start_clickhouse,
)

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
SLF4J_SIMPLE = Path("/usr/share/java/slf4j-simple.jar")  # else ZooKeeper logs nothing at all
ZOOKEEPER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
DDL_QUEUE = "/clickhouse/task_queue/ddl"

_ZOO_CFG = """tickTime=500
initLimit=10
syncLimit=5
dataDir={data}
clientPort={port}
clientPortAddress={host}
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,stat
"""


def java_binary() -> Path:
    found = shutil.which("java")
    if not found:
        raise ServiceError("java not found: apt-get install default-jre-headless (ZooKeeper runs on it)")
    return Path(found)


def _zookeeper_answers(port: int) -> None:
    """`stat` names the server's mode once it serves sessions. (`ruok` answers `imok` earlier,
    while session handshakes are still refused; 18.16 servers that lose that race at start-up
    crash on their first ZooKeeper call.)"""
    with socket.create_connection((HOST, port), timeout=2) as sock:
        sock.sendall(b"stat")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    if b"Mode:" not in answer:
        raise ServiceError(f"zookeeper is not serving yet: {answer[:80]!r}")


def start_zookeeper(workdir: Path, port: int | None = None, timeout: float = 60) -> LocalService:
    """Run a standalone ZooKeeper from Debian's `zookeeper` package; its data stays in `workdir`,
    so a restart on the same directory and port keeps every znode (and the tables' metadata)."""
    if not ZOOKEEPER_JAR.is_file():
        raise ServiceError(f"{ZOOKEEPER_JAR} not found: apt-get install zookeeper")
    java = java_binary()
    workdir, port = _place(workdir, port, "zookeeper")
    conf = workdir / "conf"
    conf.mkdir(exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    (conf / "zoo.cfg").write_text(_ZOO_CFG.format(data=workdir / "data", port=port, host=HOST))
    classpath = [str(conf), str(ZOOKEEPER_JAR), *([str(SLF4J_SIMPLE)] if SLF4J_SIMPLE.is_file() else [])]
    argv = [str(java), "-Xmx128m", "-XX:+UseSerialGC", "-Dzookeeper.jmx.log4j.disable=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-cp", ":".join(classpath), ZOOKEEPER_MAIN, str(conf / "zoo.cfg")]
    proc, log_path = _spawn(argv, workdir, "zookeeper.log")
    svc = LocalService("zookeeper", proc, HOST, port, {"client": port}, log_path)
    return _started(svc, lambda: _zookeeper_answers(port), timeout)


@dataclass
class ClusterNode:
    """One clickhouse-server of the cluster: its place, fixed ports and the running process."""

    shard: int
    replica: int
    workdir: Path
    tcp_port: int
    http_port: int
    interserver_port: int
    config: str
    service: LocalService | None = None

    @property
    def name(self) -> str:
        return f"s{self.shard}r{self.replica}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.tcp_port}"

    def start(self) -> LocalService:
        self.service = start_clickhouse(self.workdir, tcp_port=self.tcp_port, http_port=self.http_port,
                                        extra_config=self.config, log_level="warning")
        return self.service

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()

    @property
    def alive(self) -> bool:
        return self.service is not None and self.service.alive


@dataclass
class LocalCluster:
    """ZooKeeper plus `shards` x `replicas` servers forming cluster `name`."""

    name: str
    workdir: Path
    zookeeper: LocalService
    zookeeper_port: int
    nodes: list[ClusterNode] = field(default_factory=list)

    def node(self, shard: int, replica: int) -> ClusterNode:
        return next(n for n in self.nodes if (n.shard, n.replica) == (shard, replica))

    def shard(self, shard: int) -> list[ClusterNode]:
        return [n for n in self.nodes if n.shard == shard]

    @property
    def entry(self) -> ClusterNode:
        """The server clients connect to (any node would do: all have the Distributed tables)."""
        return self.nodes[0]

    def url(self, database: str) -> str:
        return f"clickhouse://default@{self.entry.address}/{database}"

    def start_zookeeper(self) -> None:
        self.zookeeper = start_zookeeper(self.workdir / "zookeeper", port=self.zookeeper_port)

    def restart_servers(self) -> None:
        """Every server stopped and started again (after a ZooKeeper outage: DESIGN.md §5)."""
        for node in self.nodes:
            node.stop()
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.zookeeper.stop()


def _remote_servers(name: str, layout: list[list[tuple[str, int]]]) -> str:
    shards = "".join(
        "\n            <shard>\n                <internal_replication>true</internal_replication>"
        + "".join(f"\n                <replica><host>{host}</host><port>{port}</port></replica>" for host, port in shard)
        + "\n            </shard>"
        for shard in layout
    )
    return f"\n    <remote_servers>\n        <{name}>{shards}\n        </{name}>\n    </remote_servers>"


def _node_config(cluster: str, remote_servers: str, zk_port: int, shard: int, replica: int,
                 interserver_port: int) -> str:
    return f"""
    <interserver_http_host>{HOST}</interserver_http_host>
    <interserver_http_port>{interserver_port}</interserver_http_port>{remote_servers}
    <zookeeper>
        <node><host>{HOST}</host><port>{zk_port}</port></node>
        <session_timeout_ms>6000</session_timeout_ms>
    </zookeeper>
    <macros>
        <cluster>{cluster}</cluster>
        <shard>{shard:02d}</shard>
        <replica>s{shard}r{replica}</replica>
    </macros>
    <distributed_ddl><path>{DDL_QUEUE}</path></distributed_ddl>"""


def start_cluster(workdir: Path, name: str = "journey", shards: int = 2, replicas: int = 2,
                  timeout: float = 60) -> LocalCluster:
    """Start ZooKeeper, then every server; on any failure stop what started and raise."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    zookeeper = start_zookeeper(workdir / "zookeeper", timeout=timeout)
    cluster = LocalCluster(name, workdir, zookeeper, zookeeper.port)
    try:
        ports = [[(free_port(), free_port(), free_port()) for _ in range(replicas)] for _ in range(shards)]
        layout = [[(HOST, tcp) for tcp, _, _ in shard] for shard in ports]
        remote = _remote_servers(name, layout)
        for s, shard in enumerate(ports, start=1):
            for r, (tcp, http, interserver) in enumerate(shard, start=1):
                cluster.nodes.append(ClusterNode(
                    s, r, workdir / f"s{s}r{r}", tcp, http, interserver,
                    _node_config(name, remote, zookeeper.port, s, r, interserver)))
        for node in cluster.nodes:
            node.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
