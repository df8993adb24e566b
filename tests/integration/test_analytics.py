"""The analysts' layer on both backends: every number `journey report` prints, checked against an
independent computation in Python from the replayed transitions.

>= 100,000 generated events are replayed in-process, and their transitions inserted in shuffled
batches (several parts, customers spread over them, out of seq order), one batch twice (the sink
re-delivering it). The report is read with the real CLI before and after the rollups are merged
(OPTIMIZE ... FINAL), on chDB (current engine) and on the session's clickhouse-server (18.16).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fivea import Rules, replay
from fivea.ratios import PathMetrics
from journey.generate import generate, to_jsonl
from schemas import Transition, parse_event
from sinks.clickhouse.analytics import DERIVED_TABLES, library_query
from sinks.clickhouse.backends import Backend, BackendURL
from sinks.clickhouse.sink import migrate, transition_row
from sinks.clickhouse.tables import TRANSITION_COLUMNS, create_database, create_transitions

pytestmark = pytest.mark.integration

STAGES = ("aware", "appeal", "ask", "act", "advocate")
LEVELS = (0.25, 0.5, 0.75, 0.9)
PERIOD = (date(2026, 1, 8), date(2026, 1, 22))
TOP = 10


# -- the data -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transitions() -> list[Transition]:
    events = [parse_event(to_jsonl(e)) for e in generate(24_000, seed=11)]  # as the wire delivers them
    assert len(events) >= 100_000
    return list(replay(events, Rules.default()))


@pytest.fixture(params=["chdb", "server"])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> BackendURL:
    """A database name of its own on each backend, nothing created yet."""
    database = f"db_a{uuid.uuid4().hex[:10]}"
    if request.param == "chdb":
        return BackendURL.parse(f"chdb://{tmp_path / 'chdb'}?database={database}")
    clickhouse = request.getfixturevalue("clickhouse")
    return BackendURL.parse(f"clickhouse://default@{clickhouse.address}/{database}")


@pytest.fixture
def url(blank_url: BackendURL) -> BackendURL:
    """A migrated, empty database on each backend."""
    migrate(blank_url)
    return blank_url


def insert(url: BackendURL, rows: list[tuple], batches: int = 1, resend: int | None = None) -> None:
    backend = url.open()
    try:
        size = -(-len(rows) // batches)
        chunks = [rows[i:i + size] for i in range(0, len(rows), size)]
        for chunk in chunks:
            backend.insert("transitions", TRANSITION_COLUMNS, chunk)
        if resend is not None:
            backend.insert("transitions", TRANSITION_COLUMNS, chunks[resend])  # the sink re-delivering a batch
    finally:
        backend.close()


def with_backend(url: BackendURL, work: Any) -> Any:
    backend = url.open()
    try:
        return work(backend)
    finally:
        backend.close()


def journey_report(url: BackendURL, *args: str, fmt: str = "json") -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    env["JOURNEY_CLICKHOUSE_URL"] = str(url)
    result = subprocess.run([sys.executable, "-m", "journey.cli", "report", "--format", fmt, *args],
                            env=env, capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return json.loads(result.stdout) if fmt == "json" else result.stdout.decode()


# -- the independent computation ------------------------------------------------------------


def _day(t: Transition) -> date:
    return t.occurred_at.astimezone(timezone.utc).date()


def _monday(day: date) -> str:
    return (day - timedelta(days=day.weekday())).isoformat()


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _quantiles(values: list[int]) -> list[int | None]:
    """ClickHouse's quantileExact: the value at position floor(level * n) of the sorted values."""
    ordered = sorted(values)
    if not ordered:
        return [None] * len(LEVELS)
    return [ordered[min(int(level * len(ordered)), len(ordered) - 1)] for level in LEVELS]


def _second(t: Transition) -> str:
    """Event time as the report prints it: UTC, to the second (what every server version stores)."""
    return t.occurred_at.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def _weeks(in_period: list[Transition], since: date, until: date) -> list[tuple[str, int, bool]]:
    """(monday, days covered, partial) of every week of the period cut to the data's first and last day."""
    if not in_period:
        return []
    start, end = max(since, min(map(_day, in_period))), min(until, max(map(_day, in_period)) + timedelta(days=1))
    days = Counter(_monday(start + timedelta(days=n)) for n in range((end - start).days))
    return [(week, n, n < 7) for week, n in sorted(days.items())]


def expected_span(transitions: Iterable[Transition], brand: str, since: date, until: date) -> dict[str, Any]:
    in_period = [t for t in transitions if t.brand == brand and since <= _day(t) < until]
    return {"first_event": min(map(_second, in_period), default=None),
            "last_event": max(map(_second, in_period), default=None)}


def _ratios(counts: dict[str, int]) -> dict[str, float | None]:
    """PAR, BAR and the stage ratios of one group's stage counts (None: denominator 0)."""
    return {"par": _ratio(counts["act"], counts["aware"]), "bar": _ratio(counts["advocate"], counts["aware"]),
            "attraction": _ratio(counts["appeal"], counts["aware"]), "curiosity": _ratio(counts["ask"], counts["appeal"]),
            "commitment": _ratio(counts["act"], counts["ask"]), "affinity": _ratio(counts["advocate"], counts["act"])}


def _first_touch(t: Transition, by: str) -> str:
    """The first touch as first_touch.sql groups it: the aware row's channel, zone or campaign ('' = none)."""
    return {"channel": t.channel, "influence": t.influence, "campaign": t.campaign}[by] or ""


def expected_sections(transitions: Iterable[Transition], brand: str, since: date, until: date,
                      top: int = TOP, window_days: int = 30) -> dict[str, Any]:
    mine = [t for t in transitions if t.brand == brand]
    in_period = [t for t in mine if since <= _day(t) < until]
    moves: dict[tuple[str, str, str], list[Transition]] = defaultdict(list)
    for t in in_period:
        moves[(t.from_stage, t.to_stage, t.kind)].append(t)
    order = ("none", *STAGES)
    flows = [{"from_stage": a, "to_stage": b, "kind": kind, "customers": len({t.customer_id for t in ts}),
              "first_at": min(map(_second, ts)), "last_at": max(map(_second, ts))}
             for (a, b, kind), ts in sorted(moves.items(), key=lambda m: (order.index(m[0][0]), order.index(m[0][1])))]
    weeks = _weeks(in_period, since, until)
    entered: dict[str, set[str]] = {s: set() for s in STAGES}
    weekly: dict[str, dict[str, set[str]]] = defaultdict(lambda: {s: set() for s in STAGES})
    zones: dict[tuple[str, str], set[str]] = defaultdict(set)
    channels: dict[str, dict[str, set[str]]] = defaultdict(lambda: {s: set() for s in STAGES})
    referred: dict[str, str] = {}
    for t in in_period:
        entered[t.to_stage].add(t.customer_id)
        weekly[_monday(_day(t))][t.to_stage].add(t.customer_id)
        zones[(t.to_stage, t.influence)].add(t.customer_id)
        channels[t.channel or ""][t.to_stage].add(t.customer_id)
        if t.to_stage == "aware" and t.referrer_id:
            referred[t.customer_id] = t.referrer_id
    counts = {s: len(entered[s]) for s in STAGES}
    metrics = PathMetrics.from_counts(counts)

    influence = []
    for stage in STAGES:
        own, other, outer = (len(zones[(stage, zone)]) for zone in ("own", "other", "outer"))
        total = own + other + outer
        influence.append({"stage": stage, "customers": total, "own": own, "other": other, "outer": outer,
                          "own_share": _ratio(own, total), "other_share": _ratio(other, total),
                          "outer_share": _ratio(outer, total)})
    channel_rows = sorted(({"channel": c, **{s: len(v[s]) for s in STAGES}} for c, v in channels.items()),
                          key=lambda r: (-r["aware"], r["channel"]))

    journeys: dict[str, list[Transition]] = defaultdict(list)
    for t in mine:
        journeys[t.customer_id].append(t)
    for path in journeys.values():
        path.sort(key=lambda t: t.seq)
        assert path[0].to_stage == "aware"
    aware_row = {customer: path[0] for customer, path in journeys.items()}
    by_touch: dict[str, list[dict[str, Any]]] = {}
    for by in ("channel", "influence", "campaign"):
        groups: dict[str, Counter] = defaultdict(Counter)
        for t in in_period:  # each entry of the period, under its person's first touch
            groups[_first_touch(aware_row[t.customer_id], by)][t.to_stage] += 1
        by_touch[by] = sorted(({"first_touch": key, **{s: n[s] for s in STAGES},
                                **_ratios({s: n[s] for s in STAGES})} for key, n in groups.items()),
                              key=lambda r: (-r["aware"], r["first_touch"]))
    window = timedelta(days=window_days)
    first_seen = [path for path in journeys.values() if since <= _day(path[0]) < until]
    reached = Counter(t.to_stage for path in first_seen for t in path if t.occurred_at <= path[0].occurred_at + window)
    to_act, to_advocate = [], []
    cohorts: dict[str, Counter] = defaultdict(Counter)
    now: Counter = Counter()
    for path in journeys.values():
        at = {t.to_stage: t for t in path}
        if "act" in at and since <= _day(at["act"]) < until:
            to_act.append(sum(t.dwell_ms or 0 for t in path if t.to_stage in ("appeal", "ask", "act")))
        if "act" in at and "advocate" in at and since <= _day(at["advocate"]) < until:
            to_advocate.append(at["advocate"].dwell_ms or 0)
        first = _day(path[0])
        if since <= first < until:
            cohort = cohorts[_monday(first)]
            cohort["customers"] += 1
            cohort.update(s for s in STAGES[1:] if s in at)
            now[path[-1].to_stage] += 1
    convert = []
    for step, values in (("aware -> act", to_act), ("act -> advocate", to_advocate)):
        p25, p50, p75, p90 = _quantiles(values)
        convert.append({"step": step, "customers": len(values), "p25_ms": p25, "p50_ms": p50, "p75_ms": p75,
                        "p90_ms": p90})
    by_advocate = Counter(referred.values())
    advocates = counts["advocate"]
    return {
        "stage_entries": [{"stage": s, "customers": counts[s]} for s in STAGES],
        "ratios": {"par": metrics.par, "bar": metrics.bar, **metrics.stage_ratios},
        "path_shape": {"shape": metrics.shape if in_period else None, "bow_tie_distance": metrics.bow_tie_distance},
        "conversion_window": [{"stage": s, "entered_in_period": counts[s], "first_seen_in_period": len(first_seen),
                               "reached_within_window": reached[s],
                               "window_conversion": _ratio(reached[s], len(first_seen))} for s in STAGES],
        "flows": flows,
        "stage_entries_weekly": [{"week": week, "days": days, "partial": partial,
                                  **{s: len(weekly[week][s]) for s in STAGES}}  # weeks without entries: zeros
                                 for week, days, partial in weeks],
        "influence_mix": influence,
        "channel_mix": channel_rows,
        **{f"first_touch_{by}": rows for by, rows in by_touch.items()},
        "time_to_convert": convert,
        "referral_reach": {"referred": len(referred), "referring_advocates": len(by_advocate),
                           "advocates": advocates, "viral_coefficient": _ratio(len(referred), advocates),
                           "referred_per_referrer": _ratio(len(referred), len(by_advocate))},
        "top_advocates": [{"advocate": a, "referred": n}
                          for a, n in sorted(by_advocate.items(), key=lambda item: (-item[1], item[0]))[:top]],
        "cohorts_weekly": [{"cohort_week": week, "days": days, "partial": partial,
                            "customers": cohorts[week]["customers"], **{s: cohorts[week][s] for s in STAGES[1:]},
                            "par": _ratio(cohorts[week]["act"], cohorts[week]["customers"]),
                            "bar": _ratio(cohorts[week]["advocate"], cohorts[week]["customers"])}
                           for week, days, partial in weeks],
        "current_stage": [{"stage": s, "customers": now[s]} for s in STAGES],
    }


def approx(value: Any) -> Any:
    """Floats equal to rounding (SQL and Python divide in another order); everything else exactly."""
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9)
    if isinstance(value, dict):
        return {k: approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx(v) for v in value]
    return value


def assert_report(report: dict[str, Any], expected: dict[str, Any], span: dict[str, Any] | None = None) -> None:
    if span is not None:
        assert {key: report[key] for key in span} == span
    assert list(report["sections"]) == list(expected)
    for name, section in expected.items():
        assert report["sections"][name] == approx(section), name


# -- tests ----------------------------------------------------------------------------------


def test_every_report_number_matches_replay_despite_redelivery_and_merges(
    url: BackendURL, transitions: list[Transition]
) -> None:
    rows = [transition_row(t) for t in transitions]
    random.Random(5).shuffle(rows)  # customers spread over parts, their rows out of seq order
    insert(url, rows, batches=6, resend=2)

    def parts(backend: Backend) -> int:
        return int(backend.query(
            "SELECT count() FROM system.parts WHERE database = {db:String} AND table = 'customer_state' AND active",
            {"db": url.database}).rows[0][0])

    assert with_backend(url, parts) > 1  # partial states in several parts: the merge functions must combine them

    whole = expected_sections(transitions, "default", date(1970, 1, 1), date(2100, 1, 1))
    assert whole["stage_entries"][0]["customers"] > 20_000 and whole["referral_reach"]["referred"] > 0
    assert {"skip", "forward"} == {move["kind"] for move in whole["flows"]}  # skips are moves of their own
    assert any(week["partial"] for week in whole["stage_entries_weekly"])
    assert_report(journey_report(url), whole, expected_span(transitions, "default", date(1970, 1, 1), date(2100, 1, 1)))
    for by in ("channel", "influence", "campaign"):  # first-touch groups add up to the stage counts
        rows = whole[f"first_touch_{by}"]
        assert len(rows) > 2
        assert [sum(r[s] for r in rows) for s in STAGES] == [r["customers"] for r in whole["stage_entries"]]
    period = expected_sections(transitions, "default", *PERIOD, window_days=2)
    ever = expected_sections(transitions, "default", *PERIOD, window_days=10_000)["conversion_window"]
    within, since_then = ([r["reached_within_window"] for r in rows] for rows in (period["conversion_window"], ever))
    assert all(a <= b for a, b in zip(within, since_then)) and within != since_then  # the window cuts some off
    act = period["conversion_window"][3]
    assert act["reached_within_window"] != act["entered_in_period"]  # funnel conversion is not a period count
    span = {**expected_span(transitions, "default", *PERIOD), "no_data": None}
    since, until = (d.isoformat() for d in PERIOD)
    assert_report(journey_report(url, "--since", since, "--until", until, "--window", "2d"), period, span)

    def merge(backend: Backend) -> None:
        for table in DERIVED_TABLES:
            backend.execute(f"OPTIMIZE TABLE {url.database}.{table} FINAL")

    with_backend(url, merge)
    assert with_backend(url, parts) == 1
    assert_report(journey_report(url, "--since", since, "--until", until, "--window", "2"), period, span)

    # the daily series for dashboards (not a report section) agrees with the same replay
    def daily(backend: Backend) -> list[dict[str, Any]]:
        result = backend.query(library_query("stage_entries_daily").sql(url.database),
                               {"brand": "default", "since": since, "until": until})
        return [dict(zip(result.columns, (str(row[0])[:10], *map(int, row[1:])))) for row in result.rows]

    per_day: dict[str, Counter] = defaultdict(Counter)
    for t in transitions:
        if PERIOD[0] <= _day(t) < PERIOD[1]:
            per_day[_day(t).isoformat()][t.to_stage] += 1  # each customer enters a stage once
    days = [(PERIOD[0] + timedelta(days=n)).isoformat() for n in range((PERIOD[1] - PERIOD[0]).days)]
    assert set(per_day) == set(days)  # the generated data has entries every day (gaps: the test below)
    assert with_backend(url, daily) == [{"day": d, **{s: per_day[d][s] for s in STAGES}} for d in days]


def test_the_daily_series_has_a_row_of_zeros_for_each_day_without_entries(url: BackendURL) -> None:
    monday = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    rows = [transition_row(_transition("g1", 1, "none", "aware", monday, brand="gaps")),
            transition_row(_transition("g1", 2, "aware", "act", monday + timedelta(days=3), brand="gaps")),
            transition_row(_transition("g2", 1, "none", "aware", monday + timedelta(days=3), brand="gaps"))]
    insert(url, rows, resend=0)
    sql = library_query("stage_entries_daily").sql(url.database)

    def daily(params: dict[str, str]) -> list[tuple[Any, ...]]:
        result = with_backend(url, lambda backend: backend.query(sql, {"brand": "gaps", **params}))
        return [(str(row[0])[:10], *map(int, row[1:])) for row in result.rows]

    all_data = {"since": "1970-01-01", "until": "2100-01-01"}
    assert daily(all_data) == [("2026-03-02", 1, 0, 0, 0, 0), ("2026-03-03", 0, 0, 0, 0, 0),
                               ("2026-03-04", 0, 0, 0, 0, 0), ("2026-03-05", 1, 0, 0, 1, 0)]
    assert daily({"since": "2026-03-03", "until": "2026-03-05"}) == []  # no entries in the period: no rows
    assert daily({"since": "2026-03-02", "until": "2026-03-04"}) == [("2026-03-02", 1, 0, 0, 0, 0)]


def _transition(customer: str, seq: int, from_stage: str, to_stage: str, at: datetime, brand: str = "kotler",
                referrer: str | None = None) -> Transition:
    skip = STAGES.index(to_stage) - (STAGES.index(from_stage) if from_stage != "none" else -1) > 1
    return Transition(
        brand=brand, customer_id=customer, seq=seq, from_stage=from_stage, to_stage=to_stage,
        kind="skip" if skip else "forward", occurred_at=at, trigger_event_id=f"e-{customer}-{seq}",
        trigger_event_type={"act": "purchase", "advocate": "share"}.get(to_stage, "clickstream"),
        channel="referral" if referrer else None, influence="other" if referrer or to_stage == "advocate" else "own",
        referrer_id=referrer, dwell_ms=None if seq == 1 else 3_600_000 * seq,
    )


def kotler_transitions() -> Iterator[Transition]:
    """Kotler's worked example: 90 aware, 18 act (impulse buys), 9 of them advocate."""
    start = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    for n in range(90):
        customer = f"k{n:02d}"
        yield _transition(customer, 1, "none", "aware", start + timedelta(minutes=n))
        if n < 18:
            yield _transition(customer, 2, "aware", "act", start + timedelta(hours=2, minutes=n))
        if n < 9:
            yield _transition(customer, 3, "act", "advocate", start + timedelta(hours=5, minutes=n))
    # another brand on the same days must not leak into the report
    for n in range(5):
        yield _transition(f"o{n}", 1, "none", "aware", start, brand="other")
        yield _transition(f"o{n}", 2, "aware", "act", start + timedelta(hours=1), brand="other")


def test_kotlers_worked_example(url: BackendURL) -> None:
    rows = [transition_row(t) for t in kotler_transitions()]
    insert(url, rows, batches=3, resend=0)
    args = ("--brand", "kotler", "--since", "2026-03-01", "--until", "2026-04-01")
    report = journey_report(url, *args)["sections"]
    assert [r["customers"] for r in report["stage_entries"]] == [90, 0, 0, 18, 9]
    assert report["ratios"] == {"par": pytest.approx(0.2), "bar": pytest.approx(0.1), "attraction": 0.0,
                                "curiosity": None, "commitment": None, "affinity": pytest.approx(0.5)}
    assert report["path_shape"]["shape"] == "door knob"
    assert report["conversion_window"] == [  # everyone bought within hours: 30 days holds them all
        {"stage": s, "entered_in_period": n, "first_seen_in_period": 90, "reached_within_window": n,
         "window_conversion": pytest.approx(n / 90)} for s, n in zip(STAGES, (90, 0, 0, 18, 9))]
    assert report["first_touch_channel"] == [  # no channel on the first contact: one group, the whole path
        {"first_touch": "", "aware": 90, "appeal": 0, "ask": 0, "act": 18, "advocate": 9, "par": pytest.approx(0.2),
         "bar": pytest.approx(0.1), "attraction": 0.0, "curiosity": None, "commitment": None,
         "affinity": pytest.approx(0.5)}]
    assert [r["first_touch"] for r in report["first_touch_influence"]] == ["own"]
    hour = journey_report(url, *args, "--window", "1d")["sections"]["conversion_window"]
    assert [r["reached_within_window"] for r in hour] == [90, 0, 0, 18, 9]

    table = journey_report(url, *args, fmt="table")
    lines = {line.split("  ")[1].strip(): line.split()[-1] for line in table.splitlines()
             if line.startswith("  ") and ("(" in line.split("  ")[1])}
    assert lines["PAR (act / aware)"] == "0.200"
    assert lines["BAR (advocate / aware)"] == "0.100"
    assert lines["curiosity (ask / appeal)"] == "n/a"
    assert lines["commitment (act / ask)"] == "n/a"
    assert "█" * 40 in table  # the bar chart, aware the widest bar

    nobody = journey_report(url, "--brand", "nobody")  # zero denominators everywhere: n/a, not an error
    assert nobody["no_data"] == "no data for brand nobody: the database has none; brands with data: kotler, other"
    empty = nobody["sections"]
    assert set(empty["ratios"].values()) == {None}
    assert empty["path_shape"] == {"shape": None, "bow_tie_distance": None}  # no data has no shape
    assert empty["flows"] == [] and empty["stage_entries_weekly"] == []
    assert empty["first_touch_channel"] == empty["first_touch_campaign"] == []
    assert [(r["first_seen_in_period"], r["window_conversion"]) for r in empty["conversion_window"]] == [(0, None)] * 5
    assert journey_report(url, "--brand", "kotler", "--since", "2026-04-01")["no_data"] == (
        "no data for brand kotler in 2026-04-01 to the end (UTC days, until exclusive): its transitions run from "
        "2026-03-02 to 2026-03-02 (UTC days)")
    assert empty["referral_reach"]["viral_coefficient"] is None
    assert [r["p50_ms"] for r in empty["time_to_convert"]] == [None, None]


SHAPES = {  # brand -> (aware, appeal, ask, act, advocate): every archetype, the bow tie, zeros
    "funnel": (100, 50, 25, 20, 5),
    "trumpet": (100, 40, 20, 10, 30),
    "goldfish": (100, 20, 60, 10, 5),
    "doorknob": (100, 30, 10, 40, 5),
    "mixed": (50, 80, 40, 20, 10),
    "bowtie": (100, 60, 60, 60, 60),
    "noappeal": (10, 0, 0, 5, 1),
    "nobody": (0, 0, 0, 0, 0),
    "noaware": (0, 3, 2, 1, 0),
}


def test_path_metrics_sql_follows_the_domain_rules(url: BackendURL) -> None:
    """path_metrics.sql restates fivea.ratios for analysts' tools: both must agree on every case."""
    at = datetime(2026, 2, 3, 12, tzinfo=timezone.utc)
    rows = []
    for brand, counts in SHAPES.items():
        for stage, n in zip(STAGES, counts):  # crafted rows: one customer per stage entry
            rows += [transition_row(_transition(f"{stage}{i}", STAGES.index(stage) + 1, "none" if stage == "aware"
                                                else STAGES[STAGES.index(stage) - 1], stage, at, brand=brand))
                     for i in range(n)]
    insert(url, rows, batches=2, resend=1)
    sql = library_query("path_metrics").sql(url.database)

    def run(backend: Backend) -> dict[str, dict[str, Any]]:
        out = {}
        for brand in SHAPES:
            result = backend.query(sql, {"brand": brand, "since": "2026-02-01", "until": "2026-03-01"})
            out[brand] = dict(zip(result.columns, result.rows[0]))
        return out

    for brand, row in with_backend(url, run).items():
        metrics = PathMetrics(*SHAPES[brand])
        assert tuple(int(row[s]) for s in STAGES) == SHAPES[brand]
        got = {k: None if row[k] is None else float(row[k])
               for k in ("par", "bar", "attraction", "curiosity", "commitment", "affinity", "bow_tie_distance")}
        assert got == approx({"par": metrics.par, "bar": metrics.bar, **metrics.stage_ratios,
                              "bow_tie_distance": metrics.bow_tie_distance}), brand
        assert row["shape"] == metrics.shape, brand


def test_migrate_backfills_transitions_stored_before_it_and_can_run_again(
    blank_url: BackendURL, transitions: list[Transition]
) -> None:
    """Upgrading a database that has only the spine: `journey migrate` folds the transitions already
    stored into the new rollups; running it again (the backfill re-reads them) changes nothing."""
    backend = blank_url.open(with_database=False)
    try:  # the schema before the analytics layer existed
        backend.execute(create_database(blank_url.database))
        backend.execute(create_transitions(blank_url.database, backend.dialect))
    finally:
        backend.close()
    sample = [t for t in transitions if t.customer_id < "c0001000"]
    insert(blank_url, [transition_row(t) for t in sample])
    migrate(blank_url)
    first = journey_report(blank_url)
    assert_report(first, expected_sections(sample, "default", date(1970, 1, 1), date(2100, 1, 1)))
    migrate(blank_url)
    assert journey_report(blank_url) == first


def test_report_through_the_process_holding_a_chdb_directory(tmp_path: Path) -> None:
    """While a worker holds the chDB directory, `journey report` asks it (as `journey sql` does)."""
    from journey.sql_endpoint import serve_sql
    from sinks.clickhouse.backends import OWNER_FILE

    url = BackendURL.parse(f"chdb://{tmp_path / 'chdb'}?database=journey")
    migrate(url)
    insert(url, [transition_row(t) for t in kotler_transitions()])
    backend = url.open()
    server = serve_sql(lambda: backend, url.path.resolve())
    try:
        report = journey_report(url, "--brand", "kotler")["sections"]
        assert report["ratios"]["par"] == pytest.approx(0.2) and report["ratios"]["bar"] == pytest.approx(0.1)
    finally:
        server.shutdown()
        (url.path.resolve() / OWNER_FILE).unlink(missing_ok=True)
        backend.close()


def test_every_library_file_runs_as_it_is_through_journey_sql(pipeline, tmp_path) -> None:
    """`journey sql --file F`, unchanged, defaults for every parameter; on chDB through the running worker."""
    from sinks.clickhouse.analytics import SQL_DIR
    from tests.integration.test_faults import write_events

    events = write_events(tmp_path / "events.jsonl", 150, seed=191)
    pipeline.journey("produce", str(events))
    pipeline.start_worker()
    pipeline.wait_for_rows(len(pipeline.replay(events)))
    files = sorted(SQL_DIR.glob("*.sql"))
    assert len(files) >= 10
    for path in files:
        result = pipeline.journey("sql", "--file", str(path), "--format", "csv", check=False)
        assert result.returncode == 0, (path.name, result.stderr.decode()[-2000:])
        assert result.stderr.decode().strip() == "", (path.name, result.stderr.decode()[-2000:])  # no stray errors
        assert len(result.stdout.decode().splitlines()) >= 2, path.name  # a header and rows: all data by default
    narrowed = pipeline.journey("sql", "--file", str(SQL_DIR / "top_advocates.sql"), "--param", "limit=1",
                                "--format", "csv")
    assert len(narrowed.stdout.decode().splitlines()) <= 2


def test_a_failed_connection_is_one_line(tmp_path) -> None:
    import subprocess
    import sys

    from journey.local import free_port
    from sinks.clickhouse.analytics import SQL_DIR

    port = free_port()
    result = subprocess.run([sys.executable, "-m", "journey.cli", "sql", "--file", str(SQL_DIR / "stage_entries.sql"),
                             "--clickhouse-url", f"clickhouse://default@127.0.0.1:{port}/journey"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"journey sql: cannot reach ClickHouse at 127.0.0.1:{port} (NetworkError) — start clickhouse-server or set "
        "JOURNEY_CLICKHOUSE_URL"]


# -- corrections: retracted rows never count (DESIGN.md §1b) ----------------------------------


def _stream_rows(events: list, seed: int) -> list[Transition]:
    """What the stream publishes when the events arrive shuffled: rows, retractions, corrected rows."""
    from fivea import advance, customer_key

    arrival = list(events)
    random.Random(seed).shuffle(arrival)
    states: dict = {}
    out: list[Transition] = []
    for event in arrival:
        key = customer_key(event)
        step = advance(states.get(key), event, Rules.default())
        states[key] = step.state
        out.extend(step.transitions)
    return out


def _live_rows(url: BackendURL) -> list[tuple]:
    backend = url.open()
    try:
        fields = [c for c in TRANSITION_COLUMNS if c not in ("seq", "retracted")]
        result = backend.query(f"SELECT {', '.join(fields)} FROM {url.database}.live_transitions")
        return sorted(tuple(str(v) for v in row) for row in result.rows)
    finally:
        backend.close()


@pytest.mark.parametrize("order", ["as published, originals re-sent after", "retractions first"])
def test_retracted_rows_never_count_whatever_the_arrival_order(url: BackendURL, order: str) -> None:
    """Live rows and every report section equal the replay's, whatever order rows and retractions land in."""
    import dataclasses

    events = [parse_event(to_jsonl(e)) for e in generate(800, seed=5)]
    published = _stream_rows(events, seed=3)
    retractions = [t for t in published if t.retracted]
    assert len(retractions) > 200  # a shuffled arrival corrects a lot
    if order == "retractions first":
        batches = [retractions, [t for t in published if not t.retracted]]
    else:
        withdrawn = {t.key for t in retractions}
        batches = [published, [t for t in published if not t.retracted and t.key in withdrawn]]
    for batch in batches:
        insert(url, [transition_row(t) for t in batch], batches=4)

    name = url.database + "_replay"
    target = url.target and dataclasses.replace(url.target, database=name)  # the server opens the target's
    reference = dataclasses.replace(url, database=name, target=target)
    migrate(reference)
    replayed = list(replay(events, Rules.default()))
    insert(reference, [transition_row(t) for t in replayed])
    assert len(_live_rows(url)) == len(replayed)
    assert _live_rows(url) == _live_rows(reference)
    live_aware = {t.customer_id: t for t in replayed if t.to_stage == "aware"}
    assert any(t.to_stage == "aware" and t.channel != live_aware[t.customer_id].channel for t in retractions if
               t.customer_id in live_aware)  # first touches corrected: a late earlier event came by another channel
    stream_report, replay_report = journey_report(url), journey_report(reference)
    assert stream_report["sections"] == replay_report["sections"]
    customers = len({(t.brand, t.customer_id) for t in replayed if t.brand == "default"})
    assert stream_report["sections"]["stage_entries"][0]["customers"] == customers


def _old_transitions_ddl(database: str, dialect) -> str:
    """The table as `journey migrate` created it before corrections (issue 13)."""
    ddl = create_transitions(database, dialect)
    ddl = ddl.replace("ReplacingMergeTree(retracted)", "ReplacingMergeTree(ingested_at)")
    return "\n".join(line for line in ddl.splitlines()
                     if not line.lstrip().startswith(("campaign ", "retracted ")))


def test_a_table_from_before_corrections_is_refused_then_rebuilt(blank_url: BackendURL) -> None:
    events = [parse_event(to_jsonl(e)) for e in generate(300, seed=9)]
    replayed = list(replay(events, Rules.default()))
    old_columns = [c for c in TRANSITION_COLUMNS if c not in ("campaign", "retracted")]
    backend = blank_url.open(with_database=False)
    try:
        backend.execute(create_database(blank_url.database))
        backend.execute(_old_transitions_ddl(blank_url.database, backend.dialect))
        rows = [transition_row(t)[:len(old_columns)] for t in replayed]
        backend.insert("transitions", old_columns, rows)
    finally:
        backend.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    env["JOURNEY_CLICKHOUSE_URL"] = str(blank_url)
    refused = subprocess.run([sys.executable, "-m", "journey.cli", "migrate"], env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "journey migrate --rebuild" in refused.stderr
    assert "Traceback" not in refused.stderr
    for args in (["--rebuild"], []):  # the rebuild, then an ordinary migration: nothing left to do
        done = subprocess.run([sys.executable, "-m", "journey.cli", "migrate", *args], env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
    assert len(_live_rows(blank_url)) == len(replayed)
    backend = blank_url.open()
    try:
        kept = backend.query(f"SELECT count() FROM {blank_url.database}.transitions_before_corrections").rows
        assert int(kept[0][0]) == len(replayed)
    finally:
        backend.close()
    customers = len({t.customer_id for t in replayed})
    assert journey_report(blank_url)["sections"]["stage_entries"][0]["customers"] == customers


# -- the first touch (issue 16): corrected by a later aware row, kept through an upgrade ------------


@pytest.mark.parametrize("order", ["in order", "correction first", "retraction last, originals re-sent"])
def test_the_first_touch_is_the_live_aware_rows_whatever_the_arrival_order(url: BackendURL, order: str) -> None:
    """An earlier contact arriving late replaces the aware row (retracted; a higher seq enters aware):
    the breakdowns and the window follow the corrected first contact."""
    start = datetime(2026, 4, 6, 9, tzinfo=timezone.utc)
    ad = _transition("f1", 1, "none", "aware", start, brand="touch").model_copy(
        update={"channel": "ad", "campaign": "spring_sale", "influence": "outer"})
    bought = _transition("f1", 2, "aware", "act", start + timedelta(days=3), brand="touch")
    # the late event: an email of the newsletter campaign 40 days earlier was the real first contact
    retract = [ad.model_copy(update={"retracted": True}), bought.model_copy(update={"retracted": True})]
    email = _transition("f1", 3, "none", "aware", start - timedelta(days=40), brand="touch").model_copy(
        update={"channel": "email", "campaign": "newsletter", "influence": "outer"})
    rebought = bought.model_copy(update={"seq": 4, "dwell_ms": 43 * 86_400_000})
    first, corrected = [ad, bought], [*retract, email, rebought]
    batches = {"in order": [first, corrected], "correction first": [corrected, first],
               "retraction last, originals re-sent": [first, [email, rebought], retract, first]}[order]
    for batch in batches:
        insert(url, [transition_row(t) for t in batch])
    report = journey_report(url, "--brand", "touch")["sections"]
    assert [(r["first_touch"], r["aware"], r["act"]) for r in report["first_touch_campaign"]] == [("newsletter", 1, 1)]
    assert [r["first_touch"] for r in report["first_touch_channel"]] == ["email"]
    window = {r["stage"]: r["reached_within_window"] for r in report["conversion_window"]}
    assert (window["aware"], window["act"]) == (1, 0)  # bought 43 days after the first contact
    assert journey_report(url, "--brand", "touch", "--window", "43d")["sections"]["conversion_window"][3][
        "reached_within_window"] == 1  # the window is inclusive


def customer_state_before_first_touch(database: str, dialect: Any) -> list[str]:
    """Statements that replace the customer_state family by its shape before issue 16 (no
    aware_channel / influence / campaign, no first_*), empty: the old tables of an upgrade."""
    import re

    from sinks.clickhouse.analytics import analytics_migrations, rebuild_customer_state

    out = rebuild_customer_state(database, dialect)
    for statement in analytics_migrations(database, dialect):
        if "customer_state" not in statement.split("\n")[0] and "customer_current_stage" not in statement[:80]:
            continue
        if statement.startswith("INSERT"):
            continue
        old = "\n".join(line for line in statement.splitlines()
                        if not re.search(r"\b(aware|first)_(channel|influence|campaign)\b", line))
        out.append(re.sub(r",([ \t]*(--[^\n]*)?\n\s*(FROM|\)))", r"\1", old))  # the last item's comma
    return out


def test_migrate_rebuilds_a_customer_state_from_before_the_first_touch(
    blank_url: BackendURL, transitions: list[Transition]
) -> None:
    """A database migrated before customer_state kept the first touch: `journey migrate` drops and
    rebuilds that rollup from transitions; the report is then whole."""
    migrate(blank_url)
    sample = [t for t in transitions if t.customer_id < "c0000500"]
    backend = blank_url.open()
    try:
        for statement in customer_state_before_first_touch(blank_url.database, backend.dialect):
            backend.execute(statement)
    finally:
        backend.close()
    insert(blank_url, [transition_row(t) for t in sample])  # rows the old rollup took in
    backend = blank_url.open()
    try:
        columns = {row[0] for row in backend.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'customer_state'",
            {"db": blank_url.database}).rows}
        assert "aware_seq" in columns and "aware_channel" not in columns
    finally:
        backend.close()
    migrate(blank_url)
    expected = expected_sections(sample, "default", date(1970, 1, 1), date(2100, 1, 1))
    assert_report(journey_report(blank_url), expected)
    assert expected["first_touch_campaign"][1]["aware"] > 0
