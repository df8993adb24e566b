"""The `cluster` profile of docker-compose.yml, checked offline (no Docker engine here): its
services, deploy/clickhouse-cluster/ configs and env file agree with each other and with what
`journey migrate --cluster` renders. The same renderer runs on a real 2 x 2 cluster in
tests/integration/test_cluster.py."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import yaml

from journey.settings import Settings
from sinks.clickhouse.placement import Placement
from sinks.clickhouse.tables import Dialect, migrations
from tests.unit.test_deploy_files import COMPOSE, ROOT, _DEFAULTED, environment, image_tag

CLUSTER_DIR = ROOT / "deploy" / "clickhouse-cluster"
NODES = ("ch-s1r1", "ch-s1r2", "ch-s2r1", "ch-s2r2")


def env_file() -> dict[str, str]:
    lines = (CLUSTER_DIR / "cluster.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def interpolated(value: Any, variables: dict[str, str]) -> Any:
    """Compose interpolation with these variables set (the others at their defaults)."""
    if isinstance(value, dict):
        return {key: interpolated(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolated(item, variables) for item in value]
    if isinstance(value, str):
        return _DEFAULTED.sub(lambda m: variables.get(m.group(1)) or m.group(2) or "", value).replace("$$", "$")
    return value


@pytest.fixture(scope="module")
def cluster_services() -> dict[str, dict[str, Any]]:
    return interpolated(yaml.safe_load(COMPOSE.read_text()), env_file())["services"]


@pytest.fixture(scope="module")
def cluster_xml() -> ET.Element:
    return ET.parse(CLUSTER_DIR / "cluster.xml").getroot()


def test_the_profile_has_keeper_and_two_shards_of_two_replicas(cluster_services):
    profiled = {name for name, s in cluster_services.items() if "cluster" in s.get("profiles", [])}
    assert profiled == {"clickhouse-keeper", *NODES}
    for name in profiled:
        service = cluster_services[name]
        assert image_tag(service["image"]) and re.search(r"\d", image_tag(service["image"])), name
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", name
    # the same pinned server as the single-server stack
    assert {cluster_services[n]["image"] for n in (*NODES, "clickhouse-keeper")} == {cluster_services["clickhouse"]["image"]}
    pairs = {(environment(cluster_services[n])["CLICKHOUSE_SHARD"], environment(cluster_services[n])["CLICKHOUSE_REPLICA"])
             for n in NODES}
    assert len(pairs) == 4 and len({shard for shard, _ in pairs}) == 2


def test_remote_servers_name_the_nodes_of_the_compose_file(cluster_services, cluster_xml):
    (cluster,) = list(cluster_xml.find("remote_servers"))
    assert cluster.tag == env_file()["JOURNEY_CLICKHOUSE_CLUSTER"] == cluster_xml.findtext("macros/cluster")
    for index, shard in enumerate(cluster.findall("shard"), start=1):
        assert shard.findtext("internal_replication") == "true"
        hosts = [replica.findtext("host") for replica in shard.findall("replica")]
        assert len(hosts) == 2
        for host, replica in zip(hosts, shard.findall("replica")):
            service = cluster_services[host]
            assert service["hostname"] == host
            env = environment(service)
            assert int(env["CLICKHOUSE_SHARD"]) == index, host
            assert replica.findtext("user") == env["CLICKHOUSE_USER"]
            assert replica.find("password").get("from_env") in env
            assert "./deploy/clickhouse-cluster/cluster.xml:/etc/clickhouse-server/config.d/cluster.xml:ro" \
                in service["volumes"]
    for macro in cluster_xml.find("macros"):
        if macro.get("from_env"):
            assert all(macro.get("from_env") in environment(cluster_services[n]) for n in NODES), macro.tag


def test_the_nodes_find_keeper(cluster_services, cluster_xml):
    keeper = ET.parse(CLUSTER_DIR / "keeper.xml").getroot()
    node = cluster_xml.find("zookeeper/node")
    assert node.findtext("host") == cluster_services["clickhouse-keeper"]["hostname"]
    assert node.findtext("port") == keeper.findtext("keeper_server/tcp_port")
    assert "9181" in " ".join(cluster_services["clickhouse-keeper"]["healthcheck"]["test"])
    (server,) = keeper.findall("keeper_server/raft_configuration/server")
    assert server.findtext("id") == keeper.findtext("keeper_server/server_id")
    assert server.findtext("hostname") == cluster_services["clickhouse-keeper"]["hostname"]
    assert any("keeper_config.xml" in v for v in cluster_services["clickhouse-keeper"]["volumes"])
    assert cluster_xml.findtext("distributed_ddl/path")


@pytest.mark.parametrize("name", ["migrate", "worker", "grafana"])
def test_with_the_env_file_the_journey_services_use_the_cluster(cluster_services, name, monkeypatch):
    service = cluster_services[name]
    assert set(NODES) <= set(service["depends_on"])
    for node in NODES:
        assert service["depends_on"][node] == {"condition": "service_healthy", "required": False}
    if name == "grafana":
        assert environment(service)["CLICKHOUSE_HOST"] in NODES
        return
    env = environment(service)
    for key in list(env):
        monkeypatch.setenv(key, env[key])
    settings = Settings()
    assert settings.clickhouse_cluster == "journey"
    assert re.match(r"clickhouse://journey@ch-s1r1:9000/journey$", settings.clickhouse_url)
    # what `journey migrate` runs there
    statements = migrations("journey", Dialect((25, 8)), Placement(settings.clickhouse_cluster))
    assert all("ON CLUSTER journey" in s for s in statements if s.startswith("CREATE"))


def test_without_the_env_file_nothing_changes(monkeypatch):
    services = interpolated(yaml.safe_load(COMPOSE.read_text()), {})["services"]
    env = environment(services["worker"])
    assert env["JOURNEY_CLICKHOUSE_URL"] == "clickhouse://journey@clickhouse:9000/journey"
    monkeypatch.setenv("JOURNEY_CLICKHOUSE_CLUSTER", env["JOURNEY_CLICKHOUSE_CLUSTER"])
    assert Settings().clickhouse_cluster is None


def test_every_cluster_volume_is_declared():
    doc = yaml.safe_load(COMPOSE.read_text())
    assert {"clickhouse-keeper-data", *(f"{n}-data" for n in NODES)} <= set(doc["volumes"])
