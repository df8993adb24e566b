"""The README's commands, run as a new user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from journey.local import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def quick_start() -> list[str]:
    block = README.split("<!-- quick-start -->")[1]
    return re.findall(r"^\$ (.+)$", block, flags=re.M)


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    return subprocess.run(args, cwd=ROOT, env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def test_the_quick_start_is_exactly_two_commands() -> None:
    assert quick_start() == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_the_demo_command_runs_the_pipeline_end_to_end(tmp_path: Path) -> None:
    demo = quick_start()[0].split()
    result = run(*demo, "--customers", "300", "--workdir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    assert "[5/5]" in out and "persons entering each stage" in out
    aware = int(re.search(r"^\s+aware\s+([\d,]+)", out, flags=re.M).group(1).replace(",", ""))
    assert aware >= 300  # every simulated customer (plus the referred ones) is aware
    assert re.search(r"PAR \(act/aware\)\s+0\.\d{3}", out)
    assert "where the data is" in out and str(tmp_path / "demo") in out
    page = tmp_path / "demo" / "report.html"  # the demo wrote the HTML report and says where
    assert f"the 5A report (HTML)  {page}" in out and page.read_text().startswith("<!DOCTYPE html>")
    assert re.search(r"done: all [\d,]+ transitions the replay predicts are in ClickHouse; [\d,]+ events at "
                     r"[\d,]+ events/s on average", out)
    assert "stopped the worker and the broker" in out  # it says it stopped what it started
    assert "deprecated" not in result.stderr.lower()  # the setup's install shows no packaging warnings
    # The data outlives the demo and is queryable with the one SQL command.
    url = f"chdb://{tmp_path / 'demo' / 'chdb'}?database=journey"
    query = run(sys.executable, "-m", "journey.cli", "sql", "SELECT count() AS n FROM journey.live_transitions",
                "--format", "csv", "--clickhouse-url", url)
    assert query.returncode == 0, query.stderr
    assert int(query.stdout.splitlines()[1]) > aware


def test_unreachable_kafka_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()
    events = tmp_path / "e.jsonl"
    events.write_text('{"type": "clickstream", "customer_id": "c1"}\n')
    result = run(sys.executable, "-m", "journey.cli", "produce", str(events),
                 env={"JOURNEY_KAFKA_BROKERS": f"127.0.0.1:{port}"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"journey produce: cannot reach Kafka at 127.0.0.1:{port} — start a broker or set JOURNEY_KAFKA_BROKERS"
    )
    assert "Traceback" not in result.stderr


def test_unreachable_clickhouse_is_one_clear_line() -> None:
    port = free_port()
    result = run(sys.executable, "-m", "journey.cli", "migrate",
                 "--clickhouse-url", f"clickhouse://default:s3cret@127.0.0.1:{port}/journey")
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"journey migrate: cannot reach ClickHouse at 127.0.0.1:{port}")
    assert "JOURNEY_CLICKHOUSE_URL" in line and "s3cret" not in result.stderr


def test_replay_reports_invalid_lines_and_goes_on(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"type":"clickstream","schema_version":1,"event_id":"e1","customer_id":"c1",'
        '"occurred_at":"2026-01-01T00:00:00Z","action":"product_view"}\n'
        "not json\n"
        '{"type":"share","schema_version":1,"event_id":"e2","customer_id":"c1",'
        '"occurred_at":"2026-01-01T00:00:00"}\n'
    )
    result = run(sys.executable, "-m", "journey.cli", "replay", str(events))
    assert result.returncode == 0
    assert [line.split('"to_stage":"')[1].split('"')[0] for line in result.stdout.splitlines()] == ["aware", "appeal"]
    assert "line 2: not a JSON document" in result.stderr
    assert "line 3: occurred_at has no timezone" in result.stderr


def test_help_reads_well() -> None:
    result = run(sys.executable, "-m", "journey.cli", "--help")
    assert result.returncode == 0
    for command in ("worker", "produce", "migrate", "replay", "topics", "generate", "demo"):
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, flags=re.M), command
    worker_help = run(sys.executable, "-m", "journey.cli", "worker", "--help").stdout
    assert "--kafka-brokers" in worker_help and "JOURNEY_" in worker_help


def test_setup_mends_a_venv_left_without_pip_and_installs_without_warnings(tmp_path: Path) -> None:
    """A first run that failed half-way (no ensurepip then) leaves a .venv without pip behind."""
    copy = tmp_path / "journey5a"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(copy / ".venv")], check=True, timeout=120)
    result = subprocess.run(["bash", "scripts/setup.sh", "local"], cwd=copy, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "creating it again" in result.stdout
    assert subprocess.run([str(copy / ".venv/bin/python"), "-m", "pip", "--version"], capture_output=True).returncode == 0
    # Any warning, but for this machine's own pip configuration (index directories it lacks).
    problems = [line for line in result.stderr.splitlines()
                if "warning" in line.lower() and "is ignored: it is neither a file nor a directory" not in line]
    assert not problems, problems


def test_the_readmes_own_events_examples_replay_as_it_says(tmp_path: Path) -> None:
    """Both examples of "Run it on your own events": our contract, and the Segment Spec."""
    import json

    section = README.split("## Run it on your own events", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    ours, segment = (block for block in blocks if block.startswith("{"))
    for name, block, args in (("ours", ours, ()), ("segment", segment, ("--format", "segment"))):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(block)
        result = run(sys.executable, "-m", "journey.cli", "replay", *args, str(path))
        assert result.returncode == 0 and "0 invalid lines" in result.stderr, result.stderr
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        if name == "segment":  # the journey the README describes: c43, aware (paid_search, spring) -> appeal -> act
            assert [(r["customer_id"], r["to_stage"]) for r in rows] == [("c43", "aware"), ("c43", "appeal"),
                                                                         ("c43", "act")]
            assert (rows[0]["channel"], rows[0]["campaign"]) == ("paid_search", "spring")
        else:  # dev-7 signed in as c43: one person
            assert {r["customer_id"] for r in rows} == {"c42", "c43"}
