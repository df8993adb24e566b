"""The deployment files, checked offline: there is no Docker engine here, so nothing is started.

What can be proven without containers is proven: the files parse; every image is pinned;
every long-running service has a health check; the journey services are configured only
through settings that exist (and that `Settings` accepts); every metric and label that an
alert or a dashboard panel reads is one the worker exports; Prometheus' own `promtool`
accepts the config and rules and unit-tests the alerts; the dashboard only uses provisioned
data sources. `docker compose config` runs too where the compose plugin exists.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from journey.metrics import JourneyMetrics
from journey.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS_YML = ROOT / "deploy" / "prometheus" / "alerts.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DATASOURCES_YML = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
DASHBOARDS_YML = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD_JSON = GRAFANA / "dashboards" / "journey-operations.json"

INFRASTRUCTURE = {"kafka", "clickhouse", "prometheus", "grafana"}
JOURNEY_SERVICES = {"topics", "migrate", "worker", "generator"}
LONG_RUNNING = INFRASTRUCTURE | {"worker"}
ONE_SHOT = {"topics", "migrate", "generator"}
#: Labels every scraped series gets from its target.
TARGET_LABELS = {"job", "instance"}
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")


# -- helpers ------------------------------------------------------------------------------------

_DEFAULTED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def with_defaults(value: Any) -> Any:
    """Compose interpolation as it happens with none of the variables set: `${X:-d}` -> d."""
    if isinstance(value, dict):
        return {key: with_defaults(item) for key, item in value.items()}
    if isinstance(value, list):
        return [with_defaults(item) for item in value]
    if isinstance(value, str):
        return _DEFAULTED.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    return value


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def image_tag(reference: str) -> str:
    """The tag of an image reference ('' when it has none); a digest alone also pins."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def exported_series() -> dict[str, set[str]]:
    """Every sample name the worker exposes on /metrics -> its label names.

    Read from the real exposition of a fresh `JourneyMetrics` with one sample in each metric,
    so counter `_total`, histogram `_bucket`/`_sum`/`_count` and the `le` label are exactly
    what prometheus_client writes, not guessed suffixes.
    """
    metrics = JourneyMetrics()
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        labelnames = getattr(metric, "_labelnames", ())
        child = metric.labels(*["x"] * len(labelnames)) if labelnames else metric
        if isinstance(metric, Counter):
            child.inc()
        elif isinstance(metric, Gauge):
            child.set(1)
        elif isinstance(metric, Histogram):
            child.observe(1)
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_METRIC = re.compile(r"\bjourney_[a-z0-9_]+\b")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")


def promql_problems(expr: str, series: dict[str, set[str]]) -> list[str]:
    """Unknown journey metrics, and label names no referenced metric has."""
    code = _STRING.sub('""', expr)
    used = set(_METRIC.findall(code))
    problems = [f"unknown metric {name}" for name in sorted(used - series.keys())]
    if re.search(r"\bup\b", code):
        used.add("up")
    known_labels = set(TARGET_LABELS).union(*(series.get(name, set()) for name in used))
    labels = {name.strip() for group in _GROUPING.findall(code) for name in group.split(",") if name.strip()}
    for matchers in _MATCHERS.findall(code):
        labels |= {m.group(1) for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers)}
    problems += [f"label {label!r} is on none of {sorted(used)}" for label in sorted(labels - known_labels)]
    if not used:
        problems.append("reads no journey metric")
    return problems


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    result = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; `!` re-includes."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [path] + ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
        regex = fnmatch.translate(pattern.replace("**/", "*"))
        if any(re.match(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return with_defaults(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def series() -> dict[str, set[str]]:
    return exported_series()


@pytest.fixture(scope="module")
def alerts() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(ALERTS_YML.read_text())
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text())


@pytest.fixture(scope="module")
def datasources() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(DATASOURCES_YML.read_text())
    return {ds["uid"]: ds for ds in doc["datasources"]}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.upper().startswith("JOURNEY_"):
            monkeypatch.delenv(name)
    yield monkeypatch


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows keep theirs inside
    return found


# -- docker-compose.yml -------------------------------------------------------------------------


def test_compose_has_every_service(services):
    assert INFRASTRUCTURE | JOURNEY_SERVICES <= services.keys()


@pytest.mark.parametrize("name", sorted(INFRASTRUCTURE | JOURNEY_SERVICES))
def test_every_image_is_pinned(services, name):
    service = services[name]
    assert "image" in service, f"{name}: no image"
    tag = image_tag(service["image"])
    assert tag and tag != "latest", f"{name}: image {service['image']!r} is not pinned"
    if "build" not in service:  # third-party images: a version, not a moving name
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} is not a version"


def test_third_party_images_are_the_expected_products(services):
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_long_running_services_have_health_checks(services, name):
    check = services[name].get("healthcheck") or {}
    assert not check.get("disable"), f"{name}: health check disabled"
    test = check.get("test")
    assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: no health check command"


def test_journey_services_share_one_image_built_from_the_dockerfile(services):
    images = {services[name]["image"] for name in JOURNEY_SERVICES}
    assert len(images) == 1
    for name in JOURNEY_SERVICES:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


@pytest.mark.parametrize("name", sorted(JOURNEY_SERVICES))
def test_journey_services_use_only_existing_settings(services, name, clean_env):
    env = environment(services[name])
    fields = set(Settings.model_fields)
    unknown = [key for key in env if not key.startswith("JOURNEY_") or key[len("JOURNEY_"):].lower() not in fields]
    assert not unknown, f"{name}: not a JOURNEY_<field> of journey.settings.Settings: {unknown}"
    for key, value in env.items():
        clean_env.setenv(key, value)
    settings = Settings()  # the values validate too
    assert settings.broker_list == ["kafka:9092"]


def test_worker_waits_for_its_dependencies(services):
    depends = services["worker"]["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["clickhouse"]["condition"] == "service_healthy"
    assert depends["topics"]["condition"] == "service_completed_successfully"
    assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_worker_can_be_scaled(services):
    worker = services["worker"]
    assert int(worker.get("deploy", {}).get("replicas", 1)) >= 1
    assert "container_name" not in worker, "a fixed container name prevents --scale"
    assert not worker.get("ports"), "published host ports collide when scaled; Prometheus uses DNS"
    env = environment(worker)
    metrics_port = env.get("JOURNEY_METRICS_PORT", str(Settings.model_fields["metrics_port"].default))
    assert metrics_port in " ".join(worker["healthcheck"]["test"])
    assert "/healthz" in " ".join(worker["healthcheck"]["test"])


def test_one_shot_jobs(services):
    assert services["topics"]["command"] == ["topics"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    for name in ONE_SHOT:
        assert services[name].get("restart", "no") == "no", f"{name} must not restart"


def test_generator_pipes_generate_into_produce_under_the_demo_profile(services):
    generator = services["generator"]
    assert generator["profiles"] == ["demo"]
    command = generator["command"]
    script = command if isinstance(command, str) else " ".join(command)
    assert re.search(r"journey generate .*\| *journey produce -(\s|$)", script), script
    entrypoint = generator["entrypoint"]
    assert entrypoint[0].endswith("sh") and entrypoint[-1] == "-c", entrypoint


def test_settings_agree_across_services(services):
    """Same partitions for `topics` and `worker`; the URL matches the ClickHouse account."""
    topics, worker = environment(services["topics"]), environment(services["worker"])
    assert topics["JOURNEY_PARTITIONS"] == worker["JOURNEY_PARTITIONS"]
    clickhouse = environment(services["clickhouse"])
    for name in JOURNEY_SERVICES:
        env = environment(services[name])
        url = re.match(r"clickhouse://([^:@]+)@clickhouse:9000/(\w+)$", env["JOURNEY_CLICKHOUSE_URL"])
        assert url, env["JOURNEY_CLICKHOUSE_URL"]
        assert url.group(1) == clickhouse["CLICKHOUSE_USER"]
        assert env["JOURNEY_CLICKHOUSE_PASSWORD"] == clickhouse["CLICKHOUSE_PASSWORD"]
    kafka = environment(services["kafka"])
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper


def test_clickhouse_raises_the_open_file_limit(services):
    nofile = services["clickhouse"]["ulimits"]["nofile"]
    assert int(nofile["soft"]) >= 262144 and int(nofile["hard"]) >= 262144


def test_volumes_are_declared_and_bind_mounts_exist(compose, services):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if not source:
                assert isinstance(volume, dict) and volume["type"] == "volume", f"{name}: {volume}"
                continue  # anonymous: one per container
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                used.add(source)
    assert used <= declared, f"undeclared named volumes: {used - declared}"
    assert {"kafka-data", "clickhouse-data", "prometheus-data", "grafana-data"} <= declared


def test_monitoring_mounts(services):
    prometheus = services["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus
    grafana = services["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    assert "grafana-clickhouse-datasource" in environment(grafana)["GF_INSTALL_PLUGINS"]


def test_docker_compose_config_accepts_the_file():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        reason = (probe.stderr or probe.stdout).strip().splitlines()
        pytest.skip(f"docker compose plugin missing ({reason[0] if reason else 'no output'})")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--profile", "demo", "config", "-q"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


# -- deploy/Dockerfile --------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_from_a_pinned_slim_python():
    instructions = dockerfile_instructions()
    args = {}
    for instruction, rest in instructions:
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    stages: list[str] = []
    for instruction, rest in instructions:
        if instruction != "FROM":
            continue
        words = [w for w in rest.split() if not w.startswith("--platform")]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
        if image not in stages:
            assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.append(words[2])
    assert len(stages) >= 2, "expected a build stage and a runtime stage"


def test_dockerfile_runs_as_non_root():
    users = [rest for instruction, rest in dockerfile_instructions() if instruction == "USER"]
    assert users, "no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_dockerfile_entrypoint_health_check_and_port():
    instructions = dict(dockerfile_instructions())  # last of each kind wins, as in Docker
    assert json.loads(instructions["ENTRYPOINT"]) == ["journey"]
    assert json.loads(instructions["CMD"]) == ["worker"]
    assert instructions["EXPOSE"].split() == [str(Settings.model_fields["metrics_port"].default)]
    check = instructions["HEALTHCHECK"]
    assert "/healthz" in check and "python" in check
    assert "curl" not in check and "wget" not in check  # neither exists in slim images


def test_dockerfile_copies_only_what_the_context_keeps():
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    for never in (".git", ".venv"):
        assert dockerignored(never, patterns), f"{never} should be in .dockerignore"
    for needed in ("pyproject.toml", "README.md", "journey/cli.py", "schemas/events.py", "fivea/path.py",
                   "streams/app.py", "sinks/contract.py"):
        assert not dockerignored(needed, patterns), f"{needed} is needed by the wheel build"
    for instruction, rest in dockerfile_instructions():
        if instruction != "COPY" or "--from=" in rest:
            continue
        *sources, _dest = [w for w in rest.split() if not w.startswith("--")]
        for source in sources:
            if source == ".":
                continue
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


# -- Prometheus ---------------------------------------------------------------------------------


def test_prometheus_scrapes_the_workers_and_loads_the_rules():
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker = jobs["journey-worker"]
    port = Settings.model_fields["metrics_port"].default
    dns = worker.get("dns_sd_configs", [])
    static = [t for c in worker.get("static_configs", []) for t in c["targets"]]
    assert any(c["names"] == ["worker"] and c["port"] == port for c in dns) or f"worker:{port}" in static


@pytest.mark.parametrize("name", ["JourneyWorkerDown", "JourneyConsumerLagGrowing", "JourneyDeadLetterRate",
                                  "JourneySinkFailing", "JourneyWorkerStalled"])
def test_alert_is_defined_with_severity_and_text(alerts, name):
    rule = alerts[name]
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip()
    assert rule.get("for")


def test_alerts_read_only_exported_metrics(alerts, series):
    problems = {name: promql_problems(rule["expr"], series) for name, rule in alerts.items()}
    problems["JourneyWorkerDown"] = [p for p in problems["JourneyWorkerDown"] if p != "reads no journey metric"]
    assert not any(problems.values()), problems


def test_alert_expressions_read_what_they_are_named_after(alerts):
    assert 'up{job="journey-worker"} == 0' in alerts["JourneyWorkerDown"]["expr"]
    assert "journey_aligner_buffered_events" in alerts["JourneyConsumerLagGrowing"]["expr"]
    assert "rate(journey_deadletters_total[5m])" in alerts["JourneyDeadLetterRate"]["expr"]
    assert "journey_fenced_partitions_total" in alerts["JourneyWorkerStalled"]["expr"]
    sink = alerts["JourneySinkFailing"]["expr"]
    assert "journey_sink_clickhouse_up == 0" in sink and "increase(journey_sink_failures_total[5m])" in sink


@needs_promtool
def test_promtool_accepts_the_rules():
    result = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS_YML)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_config():
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(PROMETHEUS_YML)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


WORKER = 'job="journey-worker", instance="10.0.0.5:9464"'
W_LABELS = {"job": "journey-worker", "instance": "10.0.0.5:9464"}

#: (alert, input series, eval time, expected label sets beyond alertname) — fed to promtool.
ALERT_CASES = [
    ("JourneyWorkerDown", [(f"up{{{WORKER}}}", "1 0 0 0 0")], "4m", [{"severity": "critical", **W_LABELS}]),
    ("JourneyWorkerDown", [(f"up{{{WORKER}}}", "1 1 1 1 1")], "4m", []),
    ("JourneyWorkerDown", [('up{job="prometheus", instance="localhost:9090"}', "1 1 1 1 1")], "4m",
     [{"severity": "critical", "job": "journey-worker"}]),
    ("JourneySinkFailing",
     [(f"journey_sink_clickhouse_up{{{WORKER}}}", "1 1 0 0 0 0 0"),
      (f"journey_sink_failures_total{{{WORKER}}}", "0 0 1 2 3 4 5")],
     "6m", [{"severity": "critical", **W_LABELS}]),
    # An idle worker reports journey_sink_clickhouse_up 0 before its first insert: no alert.
    ("JourneySinkFailing",
     [(f"journey_sink_clickhouse_up{{{WORKER}}}", "0 0 0 0 0 0 0"),
      (f"journey_sink_failures_total{{{WORKER}}}", "0 0 0 0 0 0 0")],
     "6m", []),
    ("JourneyWorkerStalled", [(f"journey_fenced_partitions_total{{{WORKER}}}", "0 0 0 2 2 2")], "5m",
     [{"severity": "warning", **W_LABELS}]),
    ("JourneyWorkerStalled", [(f"journey_fenced_partitions_total{{{WORKER}}}", "0+0x30")], "25m", []),
    ("JourneyDeadLetterRate",
     [(f'journey_deadletters_total{{{WORKER}, reason="invalid_json"}}', "0+120x12")],
     "12m", [{"severity": "warning", "reason": "invalid_json"}]),
    ("JourneyDeadLetterRate",
     [(f'journey_deadletters_total{{{WORKER}, reason="invalid_json"}}', "0+6x12")], "12m", []),
    ("JourneyConsumerLagGrowing",
     [(f"journey_aligner_buffered_events{{{WORKER}}}", "20000+1000x20")],
     "15m", [{"severity": "warning", **W_LABELS}]),
    ("JourneyConsumerLagGrowing",
     [(f"journey_aligner_buffered_events{{{WORKER}}}", "20000-1000x15")], "15m", []),
    # Event-to-ClickHouse lag: 60 transitions a minute, stored < 30 s after their event for
    # 10 minutes, then 5-15 minutes after it, then 15-60 minutes after it: the median grows.
    ("JourneyConsumerLagGrowing",
     [(f'journey_event_to_clickhouse_lag_seconds_bucket{{{WORKER}, le="{le}"}}', values)
      for le, values in [("30", "0+60x10 600+0x25"), ("300", "0+60x10 600+0x25"),
                         ("900", "0+60x20 1200+0x15"), ("3600", "0+60x35"), ("+Inf", "0+60x35")]],
     "28m", [{"severity": "warning"}]),
    # ... and a steady lag, however large, is not "growing".
    ("JourneyConsumerLagGrowing",
     [(f'journey_event_to_clickhouse_lag_seconds_bucket{{{WORKER}, le="{le}"}}', values)
      for le, values in [("30", "0+0x35"), ("300", "0+0x35"), ("900", "0+60x35"), ("3600", "0+60x35"),
                         ("+Inf", "0+60x35")]],
     "28m", []),
]


@needs_promtool
def test_promtool_unit_tests_the_alerts(tmp_path):
    """The alerts fire (and stay quiet) as intended. Annotations are stripped: promtool would
    otherwise compare their full rendered text, which these cases are not about."""
    rules = yaml.safe_load(ALERTS_YML.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules_file = tmp_path / "alerts.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    tests = [
        {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series_list],
            "alert_rule_test": [
                {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": labels} for labels in expected]}
            ],
        }
        for alert, series_list, at, expected in ALERT_CASES
    ]
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m",
                                         "tests": tests}))
    result = subprocess.run([PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# -- Grafana ------------------------------------------------------------------------------------


def test_datasources_are_provisioned_with_stable_uids(datasources, services):
    assert datasources["prometheus"]["type"] == "prometheus"
    assert datasources["prometheus"]["url"] == "http://prometheus:9090"
    clickhouse = datasources["clickhouse"]
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    host = clickhouse["jsonData"]["host"]  # a variable: `clickhouse`, or a node of the cluster profile
    assert environment(services["grafana"])[host.lstrip("$").strip("{}")] == "clickhouse"
    assert clickhouse["jsonData"]["username"] == environment(services["clickhouse"])["CLICKHOUSE_USER"]
    password = clickhouse["secureJsonData"]["password"]
    assert password.lstrip("$").strip("{}") in environment(services["grafana"]), "password variable not set"


def test_dashboards_provider_reads_the_mounted_folder():
    doc = yaml.safe_load(DASHBOARDS_YML.read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_is_valid_grafana_json(dashboard):
    assert dashboard["uid"] and dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    ids = [panel["id"] for panel in panels_of(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels_of(dashboard):
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells


def test_every_panel_uses_a_provisioned_datasource(dashboard, datasources):
    for panel in panels_of(dashboard):
        if panel["type"] == "row":
            continue
        for source in [panel["datasource"], *(t.get("datasource", panel["datasource"]) for t in panel["targets"])]:
            assert source["uid"] in datasources, f"{panel['title']}: datasource {source} is not provisioned"
            assert source["type"] == datasources[source["uid"]]["type"], panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"


def test_dashboard_queries_read_only_exported_metrics(dashboard, series):
    problems = {}
    for panel in panels_of(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                found = promql_problems(target["expr"], series)
                if found and target["expr"].strip().startswith("sum(up{"):
                    found = [p for p in found if p != "reads no journey metric"]
                if found:
                    problems[f"{panel['title']} / {target['refId']}"] = found
    assert not problems, problems


def test_dashboard_covers_the_operations_signals(dashboard):
    exprs = " ".join(t.get("expr", "") for p in panels_of(dashboard) for t in p.get("targets", []))
    for needle in (
        "sum by (topic, outcome) (rate(journey_events_consumed_total[1m]))",
        "journey_transitions_total",
        "sum by (reason) (rate(journey_deadletters_total",
        "rate(journey_sink_rows_total",
        "histogram_quantile(0.5, sum by (le) (rate(journey_sink_insert_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(journey_sink_insert_seconds_bucket",
        "histogram_quantile(0.5, sum by (le) (rate(journey_event_to_clickhouse_lag_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(journey_event_to_clickhouse_lag_seconds_bucket",
        "journey_aligner_buffered_events",
        "journey_sink_clickhouse_up",
    ):
        assert needle in exprs, needle


def test_clickhouse_panels_read_the_migrated_table(dashboard, services):
    database = environment(services["worker"])["JOURNEY_CLICKHOUSE_URL"].rsplit("/", 1)[1]
    sql = [t["rawSql"] for p in panels_of(dashboard) for t in p.get("targets", []) if "rawSql" in t]
    assert sql, "no ClickHouse panel"
    for query in sql:
        assert f"FROM {database}.transitions" in query, query


# -- docker-compose.yml against the Compose Specification's JSON Schema ------------------------

COMPOSE_SPEC_SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.schema.json"


def compose_spec_errors(document: dict[str, Any]) -> list[str]:
    """Every violation of the Compose Specification schema, as `path: message`."""
    import jsonschema

    schema = json.loads(COMPOSE_SPEC_SCHEMA.read_text())
    assert "2019-09" in schema["$schema"], schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    validator = jsonschema.Draft201909Validator(schema, format_checker=jsonschema.Draft201909Validator.FORMAT_CHECKER)
    return sorted(
        f"{'/'.join(map(str, error.absolute_path)) or '(top level)'}: {error.message}"
        for error in validator.iter_errors(document)
    )


def test_compose_file_matches_the_compose_spec_schema(compose):
    """What `docker compose config` checks first, without the plugin: the file (variables at
    their defaults, YAML anchors and `<<` merges resolved) is valid against the official
    Compose Specification schema (tests/fixtures/README.md says which copy and why). The
    whole file is validated, top-level `name` included: nothing is removed first."""
    errors = compose_spec_errors(compose)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "mutation",
    [
        "unknown top-level key",
        "misspelt service key",
        "unknown depends_on condition",
        "healthcheck test of the wrong type",
        "non-string image",
    ],
)
def test_compose_spec_schema_catches_mistakes(compose, mutation):
    """The schema check is not vacuous: typical mistakes in the same file are reported."""
    broken = json.loads(json.dumps(compose))  # a deep copy of plain data
    worker = broken["services"]["worker"]
    if mutation == "unknown top-level key":
        broken["service"] = {}
    elif mutation == "misspelt service key":
        worker["healthchek"] = worker.pop("healthcheck")
    elif mutation == "unknown depends_on condition":
        worker["depends_on"]["kafka"]["condition"] = "service_ready"
    elif mutation == "healthcheck test of the wrong type":
        worker["healthcheck"]["test"] = {"cmd": "true"}
    elif mutation == "non-string image":
        worker["image"] = 5
    assert compose_spec_errors(broken), f"{mutation} was accepted"


def test_worker_state_dir_is_a_volume_of_its_own(services):
    """A rocksdb state directory belongs to one worker: a per-container volume, not a shared one."""
    worker = services["worker"]
    state_dir = environment(worker)["JOURNEY_STATE_DIR"]
    mounts = [v for v in worker["volumes"] if isinstance(v, dict) and v.get("target") == state_dir]
    assert mounts and mounts[0]["type"] == "volume" and not mounts[0].get("source"), worker["volumes"]
    assert f"JOURNEY_STATE_DIR={state_dir}" in DOCKERFILE.read_text()
