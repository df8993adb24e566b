"""`journey up` / `journey down`: a long-lived local stack to work with, on this machine.

`journey demo` starts everything, runs a simulation and stops it all again. People who keep
working with their own events want the stack to stay: `journey up` starts a Kafka-compatible
broker (Tansu, memory only), ClickHouse (embedded chDB by default, or Debian's
clickhouse-server) and one worker, creates the topics, migrates, and prints every address with
the `export JOURNEY_...` lines that point `journey produce`, `journey sql`, `journey report` at
it. Its state lives in one directory (`.journey/local` by default): `stack.json` (what runs,
with process ids and addresses), `env.sh` (the same exports, to `source`), the logs, and the
chDB data. `journey down` stops what `up` started; a second `up` says the stack is already
running. The broker keeps its topics in memory: `down` loses them, the ClickHouse data stays.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from journey.errors import JourneyError
from journey.local import HOST, ServiceError, free_port, port_is_free, start_broker, start_clickhouse
from sinks.clickhouse.backends import process_alive

STATE = "stack.json"
DEFAULT_PORTS = {"kafka": 9092, "metrics": 9464}
DATABASE = "journey"


def _port_or_free(port: int) -> int:
    """The conventional port when it is free, else any free one (said in the summary)."""
    return port if port_is_free(port) else free_port()


def read_stack(workdir: Path) -> dict[str, Any] | None:
    path = workdir / STATE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _processes(stack: dict[str, Any]) -> dict[str, int]:
    return {name: part["pid"] for name, part in stack["services"].items() if part.get("pid")}


def exports(env: dict[str, str]) -> list[str]:
    return [f"export {name}={value}" for name, value in env.items()]


def run_journey(args: list[str], env: dict[str, str], log: Path) -> None:
    """A `journey` command as a child process, its output in `log`; failing names the log."""
    with log.open("ab") as out:
        result = subprocess.run([sys.executable, "-m", "journey.cli", *args], env=env, stdout=out, stderr=out)
    if result.returncode:
        raise JourneyError(f"`journey {' '.join(args)}` failed — see {log}")


def _wait_ready(port: int, worker: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise JourneyError(f"the worker exited with {worker.returncode} — see {log}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise JourneyError(f"the worker is not ready after {timeout:.0f}s — see {log}")


def up(workdir: Path, clickhouse: str = "chdb") -> int:
    workdir = workdir.resolve()
    stack = read_stack(workdir)
    if stack is not None:
        running = {name: pid for name, pid in _processes(stack).items() if process_alive(pid)}
        if running == _processes(stack):
            print(f"already running (started {stack['started']}, state in {workdir}):")
            _print(stack, workdir)
            return 0
        stopped = sorted(set(_processes(stack)) - set(running))
        print(f"a stack in {workdir} was not stopped cleanly ({', '.join(stopped)} not running): "
              "stopping the rest and starting again")
        down(workdir, quiet=True)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "setup.log"
    started: list[Any] = []
    try:
        print("starting a Kafka-compatible broker (Tansu, memory only)...", flush=True)
        broker = start_broker(workdir / "broker", port=_port_or_free(DEFAULT_PORTS["kafka"]), detached=True)
        started.append(broker)
        services: dict[str, dict[str, Any]] = {
            "broker": {"pid": broker.process.pid, "address": broker.address, "log": str(broker.log_path)}}
        if clickhouse == "server":
            print("starting clickhouse-server...", flush=True)
            server = start_clickhouse(workdir / "clickhouse", detached=True)
            started.append(server)
            url = f"clickhouse://default@{server.address}/{DATABASE}"
            services["clickhouse"] = {"pid": server.process.pid, "address": server.address,
                                      "log": str(server.log_path)}
        else:
            url = f"chdb://{workdir / 'chdb'}?database={DATABASE}"
            services["clickhouse"] = {"pid": None, "address": f"embedded chDB in {workdir / 'chdb'} (held by the worker)"}
        metrics_port = _port_or_free(DEFAULT_PORTS["metrics"])
        env = {
            "JOURNEY_KAFKA_BROKERS": broker.address,
            "JOURNEY_CLICKHOUSE_URL": url,
            "JOURNEY_PRODUCER_IDEMPOTENCE": "false",  # Tansu has no idempotent producer (InitProducerId)
        }
        worker_env = {**{k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}, **env,
                      "JOURNEY_SESSION_TIMEOUT_S": "10",  # Tansu group joins take half of it
                      "JOURNEY_METRICS_HOST": HOST, "JOURNEY_METRICS_PORT": str(metrics_port)}
        print("creating topics and migrating ClickHouse...", flush=True)
        run_journey(["topics"], worker_env, log)
        run_journey(["migrate"], worker_env, log)
        print("starting a worker...", flush=True)
        worker_log = workdir / "worker.log"
        with worker_log.open("ab") as out:
            worker = subprocess.Popen([sys.executable, "-m", "journey.cli", "worker"], env=worker_env,
                                      cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        started.append(worker)
        services["worker"] = {"pid": worker.pid, "address": f"http://{HOST}:{metrics_port}/metrics",
                              "log": str(worker_log)}
        _wait_ready(metrics_port, worker, worker_log)
    except (ServiceError, JourneyError) as exc:
        for service in reversed(started):
            _stop_started(service)
        raise JourneyError(str(exc)) from None
    stack = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "services": services, "env": env}
    (workdir / STATE).write_text(json.dumps(stack, indent=2) + "\n")
    (workdir / "env.sh").write_text("\n".join(exports(env)) + "\n")
    print(f"up (state in {workdir}):")
    _print(stack, workdir)
    return 0


def _stop_started(service: Any) -> None:
    if isinstance(service, subprocess.Popen):
        _terminate(service.pid)
    else:
        service.stop()


def _terminate(pid: int, timeout: float = 30) -> bool:
    """SIGTERM the process group (each service leads its own), then SIGKILL; True if it ran."""
    if not process_alive(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        try:  # a child of ours (the failed-start path) must be reaped, or it stays a zombie
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    if process_alive(pid):
        os.killpg(pid, signal.SIGKILL)
    return True


def _print(stack: dict[str, Any], workdir: Path) -> None:
    for name, part in stack["services"].items():
        log = f"  (log {part['log']})" if part.get("log") else ""
        print(f"  {name:<11} {part['address']}{log}")
    print("\nto use it from this shell (also in " + str(workdir / "env.sh") + "):")
    for line in exports(stack["env"]):
        print(f"  {line}")
    print("\nthen, for example:  journey produce events.jsonl   ·   journey report   ·   journey down")


def down(workdir: Path, quiet: bool = False) -> int:
    workdir = workdir.resolve()
    stack = read_stack(workdir)
    if stack is None:
        if not quiet:
            print(f"nothing running from {workdir} (no {STATE})")
        return 0
    stopped = []
    # The worker first: it commits its offsets and releases the chDB directory.
    for name in ("worker", "broker", "clickhouse"):
        pid = stack["services"].get(name, {}).get("pid")
        if pid and _terminate(pid):
            stopped.append(name)
    (workdir / STATE).unlink(missing_ok=True)
    if not quiet:
        kept = f"; ClickHouse data kept in {workdir}" if stack["services"].get("clickhouse") else ""
        print(f"stopped {', '.join(stopped) or 'nothing (already gone)'}{kept}; the broker's topics are gone "
              "(memory only)")
    return 0
