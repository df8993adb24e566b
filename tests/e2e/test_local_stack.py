"""`journey up` / `journey down` as a user runs them: your own file through a stack that stays."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
JOURNEY = [sys.executable, "-m", "journey.cli"]


def journey(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    return subprocess.run([*JOURNEY, *args], cwd=ROOT, env={**clean, **(env or {})}, capture_output=True,
                          text=True, timeout=300)


def test_up_produce_query_down(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    started = journey("up", "--workdir", str(stack))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        exported = dict(re.findall(r"^\s+export (JOURNEY_\w+)=(\S+)$", started.stdout, flags=re.M))
        assert {"JOURNEY_KAFKA_BROKERS", "JOURNEY_CLICKHOUSE_URL", "JOURNEY_PRODUCER_IDEMPOTENCE"} <= exported.keys()
        assert (stack / "env.sh").read_text().count("export JOURNEY_") == len(exported)

        again = journey("up", "--workdir", str(stack))
        assert again.returncode == 0 and again.stdout.startswith("already running")

        events = tmp_path / "mine.jsonl"
        assert journey("generate", "--customers", "150", "--seed", "4", "-o", str(events), "--quiet").returncode == 0
        produced = journey("produce", str(events), env=exported)  # the exports are all it takes
        assert produced.returncode == 0, produced.stderr
        expected = len(journey("replay", str(events)).stdout.splitlines())
        deadline = time.monotonic() + 120
        stored = -1
        while time.monotonic() < deadline:
            result = journey("sql", "SELECT count() AS n FROM journey.live_transitions", "--format", "csv",
                             env=exported)
            if result.returncode == 0:
                assert "Cannot lock" not in result.stderr  # through the worker, quietly
                stored = int(result.stdout.splitlines()[-1])
                if stored == expected:
                    break
            time.sleep(1)
        assert stored == expected
    finally:
        stopped = journey("down", "--workdir", str(stack))
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped worker, broker")
    assert not (stack / "stack.json").exists()
    assert journey("down", "--workdir", str(stack)).stdout.startswith("nothing running")
