"""`journey report` without a server: the query library, the analytics DDL, collecting and rendering."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

import pytest

import journey.report as report_module
import reports.html as html_module
from journey.errors import JourneyError
from journey.report import SPECS, bars, collect, duration, parse_day, parse_window, render_report
from sinks.clickhouse.analytics import (
    DERIVED_TABLES,
    VIEWS,
    LibraryQuery,
    analytics_migrations,
    library,
    library_query,
)
from sinks.clickhouse.backends import QueryResult
from sinks.clickhouse.tables import create_customer_identities, Dialect, create_transitions, migrations

LEGACY, MODERN = Dialect((18, 16)), Dialect((26, 9))
STAGES = ("aware", "appeal", "ask", "act", "advocate")


# -- the query library ----------------------------------------------------------------------


def test_every_library_file_documents_itself_and_runs_on_named_tables():
    queries = library()
    assert set(queries) >= {spec.query for spec in SPECS if spec.query} | {"path_metrics", "stage_entries_daily"}
    for name, query in queries.items():
        assert query.title != name and query.description, name
        assert query.params.startswith("brand String = 'default', since Date = '1970-01-01' (all data), "
                                       "until Date = '2100-01-01' (exclusive; all data)"), name
        assert query.reads and query.server, name
        assert query.body.startswith("SELECT"), name
        assert ";" not in query.body, name  # one statement: `journey sql` and the worker's endpoint accept it
        tables = set(re.findall(r"\bjourney\.(\w+)", query.body))
        if name == "flows":  # the one scan of rows: the live ones (retracted rows never count), in one place
            assert tables == {"live_transitions"} and query.body.count("journey.live_transitions") == 1
            continue
        assert tables and tables <= set(DERIVED_TABLES) | set(VIEWS), name
        assert "transitions" not in tables, name  # period queries never scan raw transitions
        for param in re.findall(r"\{(\w+):", query.body):
            assert param in query.defaults(), (name, param)  # every parameter has a default


def test_library_sql_is_rendered_for_the_configured_database():
    sql = library_query("stage_entries").sql("db_t1")
    assert "db_t1.stage_entries_daily" in sql and "journey." not in sql
    with pytest.raises(ValueError):
        library_query("stage_entries").sql("x; DROP TABLE y")


def test_report_columns_come_from_their_files():
    for spec in SPECS:
        if spec.query:
            body = library_query(spec.query).body
            for name, _ in spec.columns:
                assert name in spec.derived or re.search(rf"\b{name}\b", body), (spec.query, name)


def test_header_fields_parse():
    query = LibraryQuery.parse("q", "-- title: T\n-- what it is\n-- params: brand String\n"
                                    "-- server: ClickHouse >= 23.3 (parameterized views)\nSELECT 1")
    assert (query.title, query.description, query.requires, query.body) == ("T", "what it is", (23, 3), "SELECT 1")
    assert LibraryQuery.parse("q", "-- server: any\nSELECT 1").requires is None


# -- the analytics DDL ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", [LEGACY, MODERN], ids=["legacy", "modern"])
def test_analytics_ddl_is_idempotent_and_fits_the_dialect(dialect):
    statements = analytics_migrations("journey", dialect)
    creates = [s for s in statements if s.startswith("CREATE")]
    assert all(" IF NOT EXISTS " in s for s in creates)
    text = "\n".join(statements)
    assert ("LowCardinality" in text) == dialect.modern
    assert ("DateTime64" in text) == dialect.modern
    for table in DERIVED_TABLES:
        assert f"MATERIALIZED VIEW IF NOT EXISTS journey.{table}_mv TO journey.{table}" in text
        assert any(s.startswith(f"INSERT INTO journey.{table}\nSELECT") for s in statements)  # the backfill
    for view in VIEWS:
        assert f"CREATE VIEW IF NOT EXISTS journey.{view} AS" in text
    # re-sent rows must not change a rollup: only idempotent states, never count() or sum()
    states = set(re.findall(r"(\w+State)\(", text))
    assert states == {"uniqExactState", "maxIfState", "argMaxIfState"}  # and uniqExactStateIf


def test_migrate_runs_the_spine_then_the_analytics_layer():
    statements = migrations("journey", LEGACY)
    assert statements[:3] == ["CREATE DATABASE IF NOT EXISTS journey", create_transitions("journey", LEGACY),
                              create_customer_identities("journey", LEGACY)]
    assert statements[3:] == analytics_migrations("journey", LEGACY)


# -- collecting and rendering ---------------------------------------------------------------

KOTLER = {"aware": 90, "act": 18, "advocate": 9}


class FakeServer:
    """Answers the report's queries from canned rows, by library file."""

    def __init__(self, counts: Mapping[str, int], version: str = "26.9.1",
                 tables: tuple[str, ...] = (*DERIVED_TABLES, *VIEWS)) -> None:
        self.version = version
        self.tables = tables
        self.counts = counts
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.brands: list[tuple[str, str, str]] = [("default", "2025-11-03", "2025-12-30")]
        self.flows: list[tuple[Any, ...]] = [
            (("none", "aware", "forward"), counts.get("aware", 0)), (("aware", "appeal", "forward"), counts.get("appeal", 0)),
            (("appeal", "ask", "forward"), counts.get("ask", 0)), (("aware", "act", "skip"), counts.get("act", 0)),
            (("act", "advocate", "forward"), counts.get("advocate", 0))]
        self.weekly: list[tuple[Any, ...]] = []
        self.by_sql = {q.sql("db1"): name for name, q in library().items()}

    def __call__(self, sql: str, params: Mapping[str, Any]) -> QueryResult:
        self.calls.append((sql, dict(params)))
        if sql.startswith("SELECT version()"):
            return QueryResult(["version"], [(self.version,)])
        if "system.tables" in sql:
            return QueryResult(["name"], [(t,) for t in self.tables])
        if "GROUP BY brand" in sql:  # the brands with data, asked when the report is empty
            return QueryResult(["brand", "first_day", "last_day"], list(self.brands))
        name = self.by_sql[sql]
        spec = next(s for s in SPECS if s.query == name)
        columns = [c for c, _ in spec.columns if c not in spec.derived]
        if name == "stage_entries":
            return QueryResult(columns, [(s, n) for s, n in self.counts.items() if n])
        if name == "referral_reach":
            advocates = self.counts.get("advocate", 0)
            return QueryResult(columns, [(0, 0, advocates, 0 / advocates if advocates else None, None)])
        if name == "time_to_convert":
            return QueryResult(columns, [("aware -> act", 3, 90_000, 3_600_000, 90_000_000, 200_000_000),
                                         ("act -> advocate", 0, None, None, None, None)])
        if name == "channel_mix":
            return QueryResult(columns, [("", 90, 0, 0, 18, 9)])
        if name == "flows":  # first moves on Wednesday 7 January, last on Tuesday 20 January 2026
            return QueryResult(columns, [(*move, n, "2026-01-07 10:00:00.250000", "2026-01-20 18:30:00")
                                         for move, n in self.flows if n])
        if name == "stage_entries_weekly":
            return QueryResult(columns, self.weekly)
        if name == "conversion_window":  # of the aware, 12 bought and 5 advocated within the window
            aware = self.counts.get("aware", 0)
            reached = {"aware": aware, "act": min(aware, 12), "advocate": min(aware, 5)}
            return QueryResult(columns, [(s, aware, reached.get(s, 0), reached.get(s, 0) / aware if aware else None)
                                         for s in STAGES])
        if name == "first_touch" and self.counts:
            touch = {"channel": "ad", "influence": "outer", "campaign": "spring_sale"}[params["by"]]
            return QueryResult(columns, [(touch, 90, 0, 0, 18, 9, 0.2, 0.1, 0.0, None, None, 0.5)])
        return QueryResult(columns, [])


def test_kotlers_worked_example_prints_par_and_bar():
    server = FakeServer(KOTLER)
    report = collect(server, "db1", "acme", date(2026, 1, 1), date(2026, 2, 1))
    assert report.metrics.par == pytest.approx(0.2) and report.metrics.bar == pytest.approx(0.1)
    text = render_report(report, "table")
    assert re.search(r"PAR \(act / aware\)\s+0\.200$", text, re.M)
    assert re.search(r"BAR \(advocate / aware\)\s+0\.100$", text, re.M)
    assert re.search(r"curiosity \(ask / appeal\)\s+n/a$", text, re.M)  # appeal = 0
    assert re.search(r"commitment \(act / ask\)\s+n/a$", text, re.M)
    assert re.search(r"viral coefficient \(referred / advocates\)\s+0\.000$", text, re.M)
    assert "door knob (distance to the bow tie" in text
    assert "brand acme, 2026-01-01 to 2026-02-01" in text
    # every query got the brand and the period as parameters, never in the SQL text
    for sql, params in server.calls[2:]:
        assert params["brand"] == "acme" and params["since"] == "2026-01-01" and params["until"] == "2026-02-01"
        assert "acme" not in sql


def test_the_bar_chart_scales_to_the_widest_stage():
    lines = bars({"aware": 90, "appeal": 0, "ask": 1, "act": 18, "advocate": 9})
    blocks = [line.count("█") for line in lines]
    assert blocks == [40, 0, 1, 8, 4]  # a non-zero stage always shows at least one block
    assert bars({s: 0 for s in STAGES})[0].count("█") == 0


def test_zero_denominators_are_na_in_every_format():
    report = collect(FakeServer({}), "db1", "acme")
    assert report.since is None and "all data" in render_report(report, "table")
    doc = json.loads(render_report(report, "json"))
    assert set(doc["sections"]["ratios"].values()) == {None}
    assert doc["sections"]["path_shape"] == {"shape": None, "bow_tie_distance": None}  # no data: no shape
    assert [r["customers"] for r in doc["sections"]["stage_entries"]] == [0] * 5  # stages filled with zeros
    assert doc["sections"]["influence_mix"][0]["own_share"] is None
    rows = list(csv.DictReader(io.StringIO(render_report(report, "csv"))))
    par = next(r for r in rows if r["section"] == "ratios" and r["metric"] == "par")
    assert par["value"] == ""


def test_json_and_csv_carry_every_section_with_full_precision():
    report = collect(FakeServer({"aware": 3, "appeal": 1, "act": 1}), "db1", "acme")
    doc = json.loads(render_report(report, "json"))
    assert list(doc["sections"]) == [spec.key for spec in SPECS]
    assert doc["sections"]["ratios"]["par"] == 1 / 3
    assert doc["sections"]["time_to_convert"][1] == {"step": "act -> advocate", "customers": 0, "p25_ms": None,
                                                     "p50_ms": None, "p75_ms": None, "p90_ms": None}
    rows = list(csv.DictReader(io.StringIO(render_report(report, "csv"))))
    assert {r["section"] for r in rows} >= {"stage_entries", "ratios", "path_shape", "channel_mix", "time_to_convert"}
    assert float(next(r["value"] for r in rows if r["metric"] == "par")) == 1 / 3
    period = {"brand": "acme", "since": "", "until": ""}  # every line says whose and when (empty: unbounded)
    assert {**period, "section": "stage_entries", "key": "aware", "metric": "customers", "value": "3"} in rows
    assert {**period, "section": "channel_mix", "key": "", "metric": "act", "value": "18"} in rows
    assert {**period, "section": "flows", "key": "aware -> act", "metric": "customers", "value": "1"} in rows
    assert {**period, "section": "report", "key": "", "metric": "first_event", "value": "2026-01-07T10:00:00Z"} in rows


def test_a_section_the_server_cannot_run_says_which_version_it_needs(monkeypatch):
    real = report_module.library_query

    def newer(name: str) -> LibraryQuery:
        query = real(name)
        return query if name != "cohorts_weekly" else LibraryQuery(**{**query.__dict__, "server": "ClickHouse >= 99.1"})

    monkeypatch.setattr(report_module, "library_query", newer)
    report = collect(FakeServer(KOTLER, version="18.16.1"), "db1", "acme")
    assert report.sections["cohorts_weekly"].unavailable == "needs ClickHouse >= 99.1 (server is 18.16.1)"
    assert "needs ClickHouse >= 99.1" in render_report(report, "table")
    assert json.loads(render_report(report, "json"))["sections"]["cohorts_weekly"] == {
        "unavailable": "needs ClickHouse >= 99.1 (server is 18.16.1)"}


def test_a_database_without_the_analytics_layer_asks_for_migrate():
    with pytest.raises(JourneyError, match="journey migrate"):
        collect(FakeServer(KOTLER, tables=("transitions",)), "db1", "acme")


def test_an_empty_period_is_refused():
    with pytest.raises(JourneyError, match="must be before"):
        collect(FakeServer(KOTLER), "db1", "acme", date(2026, 2, 1), date(2026, 2, 1))


def test_days_are_dates():
    assert parse_day("2026-01-31") == date(2026, 1, 31)
    with pytest.raises(Exception, match="YYYY-MM-DD"):
        parse_day("last week")


@pytest.mark.parametrize(("ms", "text"), [
    (None, "n/a"), (0, "0ms"), (850, "850ms"), (42_000, "42s"), (200_000, "3m 20s"),
    (5 * 3_600_000 + 12 * 60_000, "5h 12m"), (52 * 3_600_000, "2d 4h"),
])
def test_durations_read_like_durations(ms, text):
    assert duration(ms) == text


# -- honest edges: the data's span, no data, gap-filled and partial weeks -------------------


def test_the_report_states_the_first_and_last_transition_it_covers():
    report = collect(FakeServer(KOTLER), "db1", "acme", date(2026, 1, 1), date(2026, 2, 1))
    assert (report.first_event, report.last_event) == ("2026-01-07T10:00:00Z", "2026-01-20T18:30:00Z")
    doc = json.loads(render_report(report, "json"))
    assert (doc["brand"], doc["since"], doc["until"]) == ("acme", "2026-01-01", "2026-02-01")
    assert (doc["first_event"], doc["last_event"], doc["no_data"]) == ("2026-01-07T10:00:00Z", "2026-01-20T18:30:00Z",
                                                                       None)
    assert "data: first transition 2026-01-07T10:00:00Z, last 2026-01-20T18:30:00Z" in render_report(report, "table")


def test_moves_between_stages_are_a_section_of_every_format():
    report = collect(FakeServer(KOTLER), "db1", "acme")
    doc = json.loads(render_report(report, "json"))
    assert doc["sections"]["flows"] == [
        {"from_stage": "none", "to_stage": "aware", "kind": "forward", "customers": 90,
         "first_at": "2026-01-07T10:00:00Z", "last_at": "2026-01-20T18:30:00Z"},
        {"from_stage": "aware", "to_stage": "act", "kind": "skip", "customers": 18,
         "first_at": "2026-01-07T10:00:00Z", "last_at": "2026-01-20T18:30:00Z"},
        {"from_stage": "act", "to_stage": "advocate", "kind": "forward", "customers": 9,
         "first_at": "2026-01-07T10:00:00Z", "last_at": "2026-01-20T18:30:00Z"},
    ]
    text = render_report(report, "table")
    assert re.search(r"^  aware\s+act\s+skip\s+18\s+2026-01-07T10:00:00Z", text, re.M)
    rows = list(csv.DictReader(io.StringIO(render_report(report, "csv"))))
    assert {(r["key"], r["metric"], r["value"]) for r in rows if r["section"] == "flows"} >= {
        ("aware -> act", "kind", "skip"), ("aware -> act", "customers", "18"), ("none -> aware", "customers", "90")}


def test_a_brand_or_period_without_data_says_so():
    server = FakeServer({})
    report = collect(server, "db1", "acme", date(2026, 1, 1), date(2026, 2, 1))
    assert report.no_data == "no data for brand acme: the database has none; brands with data: default"
    assert report.sections["path_shape"].rows == [(None, None)]  # not a "funnel" of zeros
    text = render_report(report, "table")
    assert "No data for brand acme: the database has none; brands with data: default" in text
    assert "PAR" not in text  # no page of zeros
    report = collect(server, "db1", "default", date(2026, 1, 1), date(2026, 2, 1))
    assert report.no_data == ("no data for brand default in 2026-01-01 to 2026-02-01 (UTC days, until exclusive): "
                              "its transitions run from 2025-11-03 to 2025-12-30 (UTC days)")
    assert "No data for brand default in 2026-01-01 to 2026-02-01 (UTC days" in render_report(report, "table")
    doc = json.loads(render_report(report, "json"))
    assert doc["no_data"] == report.no_data and doc["first_event"] is None
    assert doc["sections"]["stage_entries_weekly"] == []
    server.brands = []
    assert collect(server, "db1", "default").no_data == "no data: the database holds no transitions yet"


def test_weeks_are_gap_filled_and_partial_weeks_marked():
    server = FakeServer(KOTLER)  # data from Wednesday 7 to Tuesday 20 January 2026
    server.weekly = [("2026-01-05", 50, 0, 0, 10, 0), ("2026-01-19", 40, 0, 0, 8, 9)]
    report = collect(server, "db1", "acme", date(2026, 1, 1), date(2026, 2, 1))
    weekly = json.loads(render_report(report, "json"))["sections"]["stage_entries_weekly"]
    assert [(w["week"], w["days"], w["partial"], w["aware"]) for w in weekly] == [
        ("2026-01-05", 5, True, 50), ("2026-01-12", 7, False, 0), ("2026-01-19", 2, True, 40)]
    assert weekly[1] == {"week": "2026-01-12", "days": 7, "partial": False, **{s: 0 for s in STAGES}}
    # the period cuts the data: the first week covered starts at since (Wednesday 14th)
    server.weekly = [("2026-01-12", 20, 0, 0, 1, 0)]
    report = collect(server, "db1", "acme", date(2026, 1, 14), date(2026, 2, 1))
    weekly = report.sections["stage_entries_weekly"].rows
    assert [row[:3] for row in weekly] == [("2026-01-12", 5, True), ("2026-01-19", 2, True)]
    cohorts = report.sections["cohorts_weekly"].rows  # no cohort rows at all: every week n/a, not missing
    assert cohorts == [("2026-01-12", 5, True, 0, 0, 0, 0, 0, None, None),
                       ("2026-01-19", 2, True, 0, 0, 0, 0, 0, None, None)]
    text = render_report(report, "table")
    assert re.search(r"^  2026-01-12\s+5\s+yes\s+20\s", text, re.M)
    rows = list(csv.DictReader(io.StringIO(render_report(report, "csv"))))
    assert {"brand": "acme", "since": "2026-01-14", "until": "2026-02-01", "section": "stage_entries_weekly",
            "key": "2026-01-12", "metric": "partial", "value": "true"} in rows


# -- the HTML page --------------------------------------------------------------------------


def _embedded(page: str) -> dict[str, Any]:
    match = re.search(r"<script type='application/json' id=report-data>(.*?)</script>", page, re.S)
    assert match
    return json.loads(match.group(1))


def test_the_html_page_embeds_the_json_report_and_loads_nothing_from_the_network():
    server = FakeServer(KOTLER)
    server.weekly = [("2026-01-05", 50, 0, 0, 10, 0)]
    report = collect(server, "db1", "ac</script>me", date(2026, 1, 1), date(2026, 2, 1))
    page = render_report(report, "html")
    assert _embedded(page) == json.loads(render_report(report, "json"))  # the charts' data is the JSON report
    assert page.count("</script>") == page.count("<script")  # the brand could not end a script early
    ours = page.replace(html_module._script(html_module._asset("echarts.min.js")), "")  # the library is inlined
    assert len(ours) < len(page) - 1_000_000
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import|<img\b|<iframe\b|https?://", ours)  # nothing fetched
    for chart in ("path", "flows", "weekly", "influence", "channels", "cohorts", "convert", "referrals"):
        assert f"id='chart-{chart}'" in page
    assert "echarts" in page and "ac&lt;/script&gt;me" in page
    assert "<td class=text>aware</td><td class=text>act</td><td class=text>skip</td><td>18</td>" in page


def test_an_html_page_without_data_says_so_and_draws_no_chart():
    page = render_report(collect(FakeServer({}), "db1", "acme"), "html")
    assert "<strong>No data.</strong> no data for brand acme" in page
    assert "class=chart" not in page and "echarts.init" not in page.split("id=report-data")[0]


def test_a_stage_ratio_above_one_is_explained_by_the_skips_into_its_stage():
    server = FakeServer({"aware": 100, "appeal": 10, "ask": 25, "act": 5})  # curiosity 2.5
    server.flows = [(("none", "aware", "forward"), 100), (("aware", "appeal", "forward"), 10),
                    (("appeal", "ask", "forward"), 7), (("aware", "ask", "skip"), 18), (("ask", "act", "forward"), 5)]
    text = render_report(collect(server, "db1", "acme"), "table")
    assert re.search(r"curiosity \(ask / appeal\)\s+2\.500$", text, re.M)
    assert "  curiosity > 1: 18 of the 25 customers entering ask skipped appeal (see How people move)" in text
    assert "attraction > 1" not in text and "commitment > 1" not in text


# -- breakdowns by first touch and the conversion window (issue 16) --------------------------


def test_windows_read_as_days():
    assert parse_window("30d") == 30 and parse_window("7") == 7
    for text in ("0", "week", "-3d", "2w"):
        with pytest.raises(Exception, match="whole days"):
            parse_window(text)


def test_the_window_and_the_first_touch_are_sections_of_every_format():
    server = FakeServer(KOTLER)
    report = collect(server, "db1", "acme", date(2026, 1, 1), date(2026, 2, 1), window_days=7)
    assert {params["by"] for sql, params in server.calls if "first_touch" in sql} == {"channel", "influence",
                                                                                      "campaign"}
    assert all(params["window_days"] == 7 for _, params in server.calls[2:])
    doc = json.loads(render_report(report, "json"))
    assert doc["window_days"] == 7
    act = next(r for r in doc["sections"]["conversion_window"] if r["stage"] == "act")
    assert act == {"stage": "act", "entered_in_period": 18, "first_seen_in_period": 90, "reached_within_window": 12,
                   "window_conversion": pytest.approx(12 / 90)}  # the period count beside the windowed figure
    assert [r["first_touch"] for r in doc["sections"]["first_touch_campaign"]] == ["spring_sale"]
    assert doc["sections"]["first_touch_influence"][0]["par"] == pytest.approx(0.2)
    text = render_report(report, "table")
    assert "Conversion within 7 days of first contact" in text
    assert "entered_in_period is a period count" in text and "are funnel" in text  # which figure is which
    assert re.search(r"^By campaign of the first contact.*\n.*\n.*\n  spring_sale\s+90\s+0\s+0\s+18\s+9\s+0\.200", text, re.M)
    rows = list(csv.DictReader(io.StringIO(render_report(report, "csv"))))
    assert ("report", "window_days", "7") in {(r["section"], r["metric"], r["value"]) for r in rows}
    assert ("first_touch_channel", "ad", "act", "18") in {(r["section"], r["key"], r["metric"], r["value"])
                                                          for r in rows}
    page = render_report(report, "html")
    assert "Conversion within 7 days" in page and "chart-first-campaign" in page
    assert "entered_in_period is a period count" in page
