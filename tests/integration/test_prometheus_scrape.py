"""A real Prometheus scrapes a real worker: the numbers it stores are the pipeline's numbers, and
every PromQL expression that ships in deploy/ (alert rules, dashboard panels) is one this
Prometheus accepts.

The unit tests check the same files offline (metric and label names, promtool); here the
expressions run against live series, so a query that only parses but cannot be evaluated
(e.g. a range vector where an instant vector is needed) is caught too.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from journey.generate import generate, to_jsonl
from journey.local import LocalService, start_prometheus
from tests.support.pipeline import Pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALERTS_YML = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCES_YML = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yml"

#: start_prometheus scrapes its targets as job `journey`; deploy/prometheus/prometheus.yml calls
#: the worker job `journey-worker`, and the shipped expressions select that name.
LOCAL_JOB = "journey"
DEPLOYED_JOB = "journey-worker"

#: Grafana's built-in variables, as Grafana would expand them for a short time range.
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1m",
    "__interval_ms": "60000",
    "__range_ms": "60000",
    "__range_s": "60",
}


# -- the Prometheus HTTP API ----------------------------------------------------------------------


def api_query(prometheus: LocalService, expr: str) -> dict[str, Any]:
    """POST /api/v1/query; the decoded answer, also for a 4xx (which carries `error`)."""
    body = urllib.parse.urlencode({"query": expr}).encode()
    request = urllib.request.Request(f"{prometheus.url}/api/v1/query", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            return {"status": "error", "errorType": f"http {exc.code}", "error": text}


def vector(prometheus: LocalService, expr: str) -> list[dict[str, Any]]:
    answer = api_query(prometheus, expr)
    assert answer.get("status") == "success", f"{expr}: {answer}"
    assert answer["data"]["resultType"] == "vector", f"{expr}: {answer['data']['resultType']}"
    return answer["data"]["result"]


def scalar_of(prometheus: LocalService, expr: str) -> float | None:
    """The value of a one-sample result (None while there is none yet)."""
    result = vector(prometheus, expr)
    if not result:
        return None
    assert len(result) == 1, f"{expr}: expected one sample, got {result}"
    return float(result[0]["value"][1])


def by_label(prometheus: LocalService, expr: str, label: str) -> dict[str, float]:
    return {sample["metric"].get(label, ""): float(sample["value"][1]) for sample in vector(prometheus, expr)}


def poll(observe, expected: dict[str, Any], timeout: float, what: str) -> None:
    """Call `observe()` until it equals `expected`; a deadline, not a speed assertion."""
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while True:
        seen = observe()
        if seen == expected:
            return
        if time.monotonic() > deadline:
            diff = {key: (seen.get(key), value) for key, value in expected.items() if seen.get(key) != value}
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; (seen, expected): {diff}")
        time.sleep(0.5)


# -- the shipped expressions ----------------------------------------------------------------------


def alert_expressions() -> dict[str, str]:
    doc = yaml.safe_load(ALERTS_YML.read_text())
    found = {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            found[f"{ALERTS_YML.relative_to(ROOT)}: {name}"] = rule["expr"]
    return found


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels", [])))  # rows (collapsed ones keep theirs inside)
    return out


def _prometheus_uids() -> set[str]:
    doc = yaml.safe_load(DATASOURCES_YML.read_text()) if DATASOURCES_YML.exists() else {}
    return {ds["uid"] for ds in (doc or {}).get("datasources", []) if ds.get("type") == "prometheus" and "uid" in ds}


def _is_prometheus(source: Any, uids: set[str]) -> bool:
    if isinstance(source, dict):
        return source.get("type") == "prometheus" or source.get("uid") in uids
    if isinstance(source, str):  # old dashboards name the data source, or use ${DS_PROMETHEUS}
        return "prometheus" in source.lower() or source in uids
    return False


def grafana_expand(expr: str, variables: dict[str, str]) -> str:
    """Substitute `$name`, `${name}`, `${name:format}` and `[[name]]` as Grafana would."""
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)", value, expr)


def dashboard_expressions() -> dict[str, str]:
    uids = _prometheus_uids()
    found = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        variables = dict(GRAFANA_BUILTINS)
        for variable in (dashboard.get("templating") or {}).get("list", []):
            current = (variable.get("current") or {}).get("value")
            if isinstance(current, list):
                current = "|".join(current)
            variables[variable["name"]] = ".*" if current in (None, "", "$__all") else str(current)
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                source = target.get("datasource", panel.get("datasource"))
                if "expr" in target and (source is None or _is_prometheus(source, uids)):
                    key = f"{path.relative_to(ROOT)}: panel {panel.get('id')} {panel.get('title')!r} / {target.get('refId')}"
                    found[key] = grafana_expand(target["expr"], variables)
    return found


# -- the test -------------------------------------------------------------------------------------


def test_prometheus_scrapes_the_worker_and_accepts_the_shipped_queries(pipeline: Pipeline, tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    with events_file.open("wb") as out:
        for event in generate(200, seed=7):
            out.write(to_jsonl(event))
    events = len(events_file.read_bytes().splitlines())
    expected = pipeline.replay(events_file)
    assert expected, "the dataset produces no transitions"

    pipeline.journey("produce", str(events_file))
    _, metrics_port = pipeline.start_worker()
    pipeline.wait_for_rows(len(expected))

    prometheus = start_prometheus(tmp_path / "prometheus", [f"127.0.0.1:{metrics_port}"])
    try:
        # 1. What Prometheus stored is what the pipeline did.
        want = {
            "transitions": float(len(expected)),
            "by to_stage": {stage: float(n) for stage, n in Counter(t["to_stage"] for t in expected).items()},
            "accepted events": float(events),
            "sink up": 1.0,
            "target up": 1.0,
        }

        def observe() -> dict[str, Any]:
            return {
                "transitions": scalar_of(prometheus, "sum(journey_transitions_total)"),
                "by to_stage": by_label(prometheus, "sum by (to_stage) (journey_transitions_total)", "to_stage"),
                "accepted events": scalar_of(prometheus, 'sum(journey_events_consumed_total{outcome="accepted"})'),
                "sink up": scalar_of(prometheus, "journey_sink_clickhouse_up"),
                "target up": scalar_of(prometheus, f'up{{job="{LOCAL_JOB}"}}'),
            }

        poll(observe, want, timeout=90, what="the scraped worker metrics to match the replay")

        # 2. Every shipped PromQL expression evaluates on this Prometheus, over these series.
        expressions = {**alert_expressions(), **dashboard_expressions()}
        assert any(key.startswith("deploy/prometheus/") for key in expressions), "no alert rule found"
        assert any(key.startswith("deploy/grafana/") for key in expressions), "no Prometheus panel found"
        rejected = {}
        for where, expr in expressions.items():
            answer = api_query(prometheus, expr.replace(f'job="{DEPLOYED_JOB}"', f'job="{LOCAL_JOB}"'))
            if answer.get("status") != "success":
                rejected[where] = f"{expr.strip()!r}: {answer.get('errorType')}: {answer.get('error')}"
        assert not rejected, "Prometheus rejected:\n" + "\n".join(f"{k}: {v}" for k, v in rejected.items())

        # 3. On this healthy pipeline (worker up, sink writing, no dead letters) no alert fires.
        firing = {}
        for where, expr in alert_expressions().items():
            result = vector(prometheus, expr.replace(f'job="{DEPLOYED_JOB}"', f'job="{LOCAL_JOB}"'))
            if result:
                firing[where] = result
        assert not firing, f"alert expressions return samples on a healthy pipeline: {firing}"
    finally:
        prometheus.stop()
