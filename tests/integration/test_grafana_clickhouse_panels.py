"""Every ClickHouse query in the shipped Grafana dashboards runs, on current ClickHouse (chDB)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from fivea import Rules, replay
from journey.generate import generate, to_jsonl
from schemas import EVENT_ADAPTER
from sinks.clickhouse.backends import ChdbBackend
from sinks.clickhouse.sink import transition_row
from sinks.clickhouse.tables import TRANSITION_COLUMNS, migrations

pytestmark = pytest.mark.integration
pytest.importorskip("chdb")
ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
FROM, TO = "2026-01-01 00:00:00", "2026-03-01 00:00:00"


def grafana_to_clickhouse(sql: str) -> str:
    """What the Grafana ClickHouse plugin sends for a given time range and variables."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime('{FROM}') AND \1 <= toDateTime('{TO}')", sql)
    return (sql.replace("$__fromTime", f"toDateTime('{FROM}')").replace("$__toTime", f"toDateTime('{TO}')")
               .replace("${brand}", "default").replace("${first_touch}", "campaign").replace("${window_days}", "30"))


def clickhouse_panels() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                if target.get("datasource", panel.get("datasource", {})).get("uid") == "clickhouse":
                    found.append((path.name, panel["title"], target["rawSql"]))
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("datasource", {}).get("uid") == "clickhouse":
                found.append((path.name, f"variable {variable['name']}", variable["query"]))
    return found


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory):
    backend = ChdbBackend(tmp_path_factory.mktemp("chdb"), "journey")
    for statement in migrations("journey", backend.dialect):
        backend.execute(statement)
    events = [EVENT_ADAPTER.validate_json(to_jsonl(e)) for e in generate(300, seed=17)]
    backend.insert("transitions", TRANSITION_COLUMNS, [transition_row(t) for t in replay(events, Rules.default())])
    yield backend
    backend.close()


def test_the_5a_dashboard_is_built_from_the_query_library() -> None:
    spec = importlib.util.spec_from_file_location("build", ROOT / "deploy" / "grafana" / "build_5a_dashboard.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    committed = (ROOT / "deploy" / "grafana" / "dashboards" / "journey-5a-path.json").read_text()
    assert committed == build.render(), "run: python deploy/grafana/build_5a_dashboard.py"


@pytest.mark.parametrize(("dashboard", "title", "sql"), clickhouse_panels(), ids=lambda v: str(v)[:40])
def test_panel_query_runs(chdb, dashboard: str, title: str, sql: str) -> None:
    result = chdb.query(grafana_to_clickhouse(sql))
    assert result.columns, f"{dashboard} / {title}: no columns"
