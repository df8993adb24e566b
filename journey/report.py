"""`journey report`: Kotler's 5A metrics of one brand and period, from the analysts' layer.

Each section runs one file of the query library (sinks/clickhouse/sql/, the same SQL analysts
copy into Grafana or their notebooks); the ratios and the path shape come from the section's
stage counts through `fivea.ratios.PathMetrics`, the domain's one statement of those rules.

The period is a range of UTC days, `[since, until)`: a customer counts in a stage when the
transition that entered it occurred on one of those days (the rollups are daily). Without
`--since` / `--until` the report covers all data.

Breakdowns by first touch: stage counts and ratios per channel, influence zone and campaign of
each person's first contact (their live aware transition), every entry of the period counted
under the first touch of the person who made it. Conversion window (`--window`, default 30
days): of the persons first seen in the period, the share that entered each stage within the
window — funnel conversion as PostHog and Mixpanel define it — beside the period counts; the
section's note says which figure is which.

Honest edges: the report states the first and last transition time of the data it covers;
a brand or period without data says so (`no_data`) instead of printing a path of zeros; the
weekly series (stage entries, cohorts) run over every week of the covered days, empty weeks as
zeros, and a week the period or the data cuts short is marked partial with its day count.

Four renderings: `table` (headings, a bar chart of the stage counts, n/a for a ratio whose
denominator is 0), `json` (one document: brand, period, data span, `sections` by name, each a
list of rows or one record; n/a is null), `csv` (tidy long format
`brand,since,until,section,key,metric,value`; n/a is empty) and `html` (one self-contained
page with charts: reports/html.py, fed the JSON document).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson

from fivea.ratios import PathMetrics
from fivea.stages import PATH
from journey.errors import JourneyError
from journey.output import render
from reports.formatting import LABELS
from reports.formatting import cell as _text
from reports.formatting import note
from reports.formatting import duration  # noqa: F401 - part of this module's interface
from sinks.clickhouse.analytics import DERIVED_TABLES, VIEWS, LibraryQuery, library_query

if TYPE_CHECKING:
    from sinks.clickhouse.backends import BackendURL, QueryResult

STAGES = tuple(stage.label for stage in PATH)
ALL_TIME = (date(1970, 1, 1), date(2100, 1, 1))  # Date covers both ends on every server version
DEFAULT_TOP = 10
BAR_WIDTH = 40

#: Runs one query with `{name:Type}` parameters.
Runner = Callable[[str, Mapping[str, Any]], "QueryResult"]


def parse_window(text: str) -> int:
    """A conversion window in whole days, `30d` or `30` (argparse type of --window)."""
    import re

    match = re.fullmatch(r"\s*(\d+)\s*d?\s*", text)
    if not match or int(match.group(1)) < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r} is not a window: use whole days, e.g. 30d (or 30)")
    return int(match.group(1))


def parse_day(text: str) -> date:
    """A UTC day, YYYY-MM-DD (argparse type of --since / --until)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD (UTC days; the rollups are daily)"
        ) from None


# -- sections -------------------------------------------------------------------------------


def _int(value: Any) -> int:
    return int(value)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if number != number else number  # NaN: no data


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _str(value: Any) -> str:
    return str(value)


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)[:10]


def _bool(value: Any) -> bool:
    return bool(value)


def _time(value: Any) -> str | None:
    """An event time as RFC 3339 UTC to the second (what every server version stores)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))  # chDB and the worker's endpoint send text
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None, microsecond=0).isoformat() + "Z"


@dataclass(frozen=True)
class Spec:
    """A report section: its library query (None: computed here), title and typed columns."""

    key: str
    title: str
    query: str | None
    columns: tuple[tuple[str, Callable[[Any], Any]], ...]
    record: bool = False  # one row, shown as "label  value" lines
    keys: int = 1  # leading columns that name a row (the CSV's key: joined with " -> ")
    derived: tuple[str, ...] = ()  # columns computed here, not read from the query
    params: tuple[tuple[str, Any], ...] = ()  # the query's parameters besides brand, period, limit, window


COUNTS = tuple((stage, _int) for stage in STAGES)
RATIOS = tuple((name, _float) for name in ("par", "bar", "attraction", "curiosity", "commitment", "affinity"))
DEFAULT_WINDOW_DAYS = 30
#: Breakdowns by first touch: (section key suffix and `by` value, what the title calls it).
FIRST_TOUCH = (("channel", "acquisition channel"), ("influence", "influence zone of the first contact"),
               ("campaign", "campaign of the first contact"))
WEEK_DAYS = (("days", _int), ("partial", _bool))  # days of the week the report covers; partial: < 7
SPECS = (
    Spec("stage_entries", "Customers entering each stage (period counts)", "stage_entries", (("stage", _str), ("customers", _int))),
    Spec("ratios", "Ratios", None, RATIOS, record=True),
    Spec("path_shape", "Path shape", None, (("shape", _str), ("bow_tie_distance", _float)), record=True),
    Spec("conversion_window", "Conversion within {window} days of first contact", "conversion_window",
         (("stage", _str), ("entered_in_period", _int), ("first_seen_in_period", _int),
          ("reached_within_window", _int), ("window_conversion", _float)), derived=("entered_in_period",)),
    Spec("flows", "How people move: customers per move between stages (skips included; none = first contact)",
         "flows", (("from_stage", _str), ("to_stage", _str), ("kind", _str), ("customers", _int),
                   ("first_at", _time), ("last_at", _time)), keys=2),
    Spec("stage_entries_weekly", "Stage entries per week (weeks from Monday; partial: fewer than 7 days covered)",
         "stage_entries_weekly", (("week", _day), *WEEK_DAYS, *COUNTS), derived=("days", "partial")),
    Spec("influence_mix", "What moved them: influence zone per stage", "influence_mix",
         (("stage", _str), ("customers", _int), ("own", _int), ("other", _int), ("outer", _int),
          ("own_share", _float), ("other_share", _float), ("outer_share", _float))),
    Spec("channel_mix", "Channels per stage (the channel of the event that moved them: triggering channel)",
         "channel_mix", (("channel", _str), *COUNTS)),
    *(Spec(f"first_touch_{by}", f"By {what} (first touch: each entry counted under its person's first contact)",
           "first_touch", (("first_touch", _str), *COUNTS, *RATIOS), params=(("by", by),))
      for by, what in FIRST_TOUCH),
    Spec("time_to_convert", "Time to convert", "time_to_convert",
         (("step", _str), ("customers", _int), ("p25_ms", _opt_int), ("p50_ms", _opt_int),
          ("p75_ms", _opt_int), ("p90_ms", _opt_int))),
    Spec("referral_reach", "Referral reach", "referral_reach",
         (("referred", _int), ("referring_advocates", _int), ("advocates", _int),
          ("viral_coefficient", _float), ("referred_per_referrer", _float)), record=True),
    Spec("top_advocates", "Top advocates (customers they brought)", "top_advocates",
         (("advocate", _str), ("referred", _int))),
    Spec("cohorts_weekly", "Weekly cohorts (by first-seen week; stages entered since)", "cohorts_weekly",
         (("cohort_week", _day), *WEEK_DAYS, ("customers", _int), *COUNTS[1:], ("par", _float), ("bar", _float)),
         derived=("days", "partial")),
    Spec("current_stage", "Where customers first seen in the period are now", "current_stage",
         (("stage", _str), ("customers", _int))),
)
SPEC = {spec.key: spec for spec in SPECS}


@dataclass
class Section:
    key: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    record: bool = False
    unavailable: str | None = None  # why the section could not run on this server

    def as_json(self) -> Any:
        if self.unavailable:
            return {"unavailable": self.unavailable}
        rows = [dict(zip(self.columns, row)) for row in self.rows]
        return (rows[0] if rows else {}) if self.record else rows


@dataclass
class Report:
    brand: str
    since: date | None
    until: date | None
    server: str
    sections: dict[str, Section]
    first_event: str | None = None  # the first and last transition in the period (event time, UTC)
    last_event: str | None = None
    no_data: str | None = None  # why the report is empty, when it is
    window_days: int = DEFAULT_WINDOW_DAYS  # the conversion window (section conversion_window)

    @property
    def stage_counts(self) -> dict[str, int]:
        return dict(self.sections["stage_entries"].rows)

    @property
    def metrics(self) -> PathMetrics:
        return PathMetrics.from_counts(self.stage_counts)

    def as_json(self) -> dict[str, Any]:
        return {
            "brand": self.brand,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "server": self.server,
            "first_event": self.first_event,
            "last_event": self.last_event,
            "no_data": self.no_data,
            "window_days": self.window_days,
            "sections": {key: section.as_json() for key, section in self.sections.items()},
        }


# -- collecting -----------------------------------------------------------------------------


def _version(text: str) -> tuple[int, int]:
    major, minor, *_ = (text.split(".") + ["0"])[:2]
    return int(major), int(minor)


def _zero_filled(spec: Spec, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One row per stage, in path order; a stage without a row gets 0 counts and n/a shares."""
    by_stage = {row[0]: row for row in rows}
    empty = tuple(None if convert is _float else 0 for _, convert in spec.columns[1:])
    return [by_stage.get(stage, (stage, *empty)) for stage in STAGES]


def collect(run: Runner, database: str, brand: str, since: date | None = None, until: date | None = None,
            *, top: int = DEFAULT_TOP, window_days: int = DEFAULT_WINDOW_DAYS) -> Report:
    """Run every section's query through `run` and return the report (no rendering)."""
    first, last = since or ALL_TIME[0], until or ALL_TIME[1]
    if first >= last:
        raise JourneyError(f"--since {first} must be before --until {last} (until is exclusive)")
    server = str(run("SELECT version() AS version", {}).rows[0][0])
    version = _version(server)
    _check_migrated(run, database)
    params = {"brand": brand, "since": first.isoformat(), "until": last.isoformat(), "limit": top,
              "window_days": window_days}
    sections: dict[str, Section] = {}
    for spec in SPECS:
        if spec.query is None:
            continue
        section = Section(spec.key, spec.title.format(window=window_days), tuple(name for name, _ in spec.columns),
                          record=spec.record)
        query = library_query(spec.query)
        if query.requires and version < query.requires:
            section.unavailable = f"needs ClickHouse >= {'.'.join(map(str, query.requires))} (server is {server})"
        else:
            section.rows = _typed(spec, run(query.sql(database), {**params, **dict(spec.params)}))
        sections[spec.key] = section
    for key in ("stage_entries", "influence_mix", "current_stage"):  # every stage, even if nobody entered it
        if not sections[key].unavailable:
            sections[key].rows = _zero_filled(SPEC[key], sections[key].rows)
    flows = sections["flows"].rows
    first_event = min((row[4] for row in flows), default=None)
    last_event = max((row[5] for row in flows), default=None)
    covered = _covered_days(first, last, first_event, last_event)
    for key, blank in (("stage_entries_weekly", 0), ("cohorts_weekly", None)):
        if not sections[key].unavailable:
            sections[key].rows = _weeks(sections[key].rows, covered, len(SPEC[key].columns) - 3, blank)
    counts = dict(sections["stage_entries"].rows)
    window = sections["conversion_window"]
    if not window.unavailable:  # the period counts beside the windowed figures
        window.rows = [(row[0], counts.get(row[0], 0), *row[1:]) for row in window.rows]
    metrics = PathMetrics.from_counts(counts)
    ratios = Section("ratios", SPEC["ratios"].title, tuple(name for name, _ in SPEC["ratios"].columns), record=True,
                     rows=[(metrics.par, metrics.bar, *metrics.stage_ratios.values())])
    no_data = None if flows else _no_data(run, database, brand, since, until)
    shape = Section("path_shape", SPEC["path_shape"].title, ("shape", "bow_tie_distance"), record=True,
                    rows=[(None if no_data else metrics.shape, metrics.bow_tie_distance)])
    sections.update(ratios=ratios, path_shape=shape)
    return Report(brand, since, until, server, {spec.key: sections[spec.key] for spec in SPECS},
                  first_event, last_event, no_data, window_days)


def _covered_days(first: date, last: date, first_event: str | None, last_event: str | None) -> tuple[date, date] | None:
    """The days `[start, end)` the report has data for: the period cut to the data's first and last day."""
    if first_event is None or last_event is None:
        return None
    start = max(first, date.fromisoformat(first_event[:10]))
    end = min(last, date.fromisoformat(last_event[:10]) + timedelta(days=1))
    return (start, end) if start < end else None


def _weeks(rows: list[tuple[Any, ...]], covered: tuple[date, date] | None, width: int,
           blank: Any) -> list[tuple[Any, ...]]:
    """Every week (from Monday) of the covered days, in order, with how many of its days are covered.

    `rows` are (week, value, ...) from the query; a week without a row gets zero counts (and
    `blank` in its float columns, the last two: n/a shares). Returns (week, days, partial, values...).
    """
    if covered is None:
        return [(row[0], 0, True, *row[1:]) for row in rows]
    start, end = covered
    by_week = {row[0]: row[1:] for row in rows}
    out = []
    week = start - timedelta(days=start.weekday())
    while week < end:
        days = (min(end, week + timedelta(days=7)) - max(start, week)).days
        values = by_week.pop(week.isoformat(), None)
        if values is None:
            values = (0,) * width if blank == 0 else (*(0,) * (width - 2), blank, blank)
        out.append((week.isoformat(), days, days < 7, *values))
        week += timedelta(days=7)
    # a row outside the covered days cannot come from the same data; keep it rather than hide it
    out += [(week_, 0, True, *values) for week_, values in sorted(by_week.items())]
    return sorted(out, key=lambda row: row[0])


def _no_data(run: Runner, database: str, brand: str, since: date | None, until: date | None) -> str:
    """Say why the report is empty: the brand has no data at all, or none in this period."""
    from sinks.clickhouse.target import checked_identifier

    db = checked_identifier(database, "database name")
    spans = {str(row[0]): (_day(row[1]), _day(row[2])) for row in run(
        f"SELECT brand, min(day) AS first_day, max(day) AS last_day FROM {db}.stage_entries "
        "WHERE customers > 0 GROUP BY brand ORDER BY brand", {}).rows}  # live entries only
    if brand in spans:
        first_day, last_day = spans[brand]
        period = _period_text(since, until)
        return (f"no data for brand {brand} in {period}: its transitions run from {first_day} "
                f"to {last_day} (UTC days)")
    if not spans:
        return "no data: the database holds no transitions yet"
    return f"no data for brand {brand}: the database has none; brands with data: {', '.join(sorted(spans))}"


def _typed(spec: Spec, result: QueryResult) -> list[tuple[Any, ...]]:
    """The query's columns of the section, typed (derived columns are added later)."""
    columns = [(name, convert) for name, convert in spec.columns if name not in spec.derived]
    index = {name: i for i, name in enumerate(result.columns)}
    missing = [name for name, _ in columns if name not in index]
    if missing:
        raise JourneyError(f"query {spec.query}.sql returned no column {', '.join(missing)}")
    return [tuple(convert(row[index[name]]) for name, convert in columns) for row in result.rows]


def _check_migrated(run: Runner, database: str) -> None:
    needed = (*DERIVED_TABLES, *VIEWS)
    found = {row[0] for row in run(
        "SELECT name FROM system.tables WHERE database = {db:String}", {"db": database}).rows}
    missing = [name for name in needed if name not in found]
    if missing:
        raise JourneyError(
            f"database {database} has no {', '.join(missing)} — run `journey migrate` "
            "(it creates the analytics tables and fills them from transitions)"
        )


def build_report(url: BackendURL, brand: str, since: date | None = None, until: date | None = None,
                 *, top: int = DEFAULT_TOP, window_days: int = DEFAULT_WINDOW_DAYS) -> Report:
    """Open the configured backend (or, for a chDB directory a worker holds, ask that worker) and collect."""
    from journey.sql_endpoint import query_owner
    from sinks.clickhouse.backends import ChdbLocked, QueryError
    from sinks.contract import SinkUnavailable

    try:
        backend = url.open()
    except ChdbLocked as exc:
        if not exc.owner:
            raise JourneyError(str(exc)) from None
        owner = exc.owner
        return collect(lambda sql, params: query_owner(owner, sql, dict(params)),
                       url.database, brand, since, until, top=top, window_days=window_days)
    except SinkUnavailable as exc:
        raise JourneyError(str(exc)) from None
    try:
        return collect(backend.query, url.database, brand, since, until, top=top, window_days=window_days)
    except (SinkUnavailable, QueryError) as exc:
        raise JourneyError(str(exc)) from None
    finally:
        backend.close()


# -- rendering ------------------------------------------------------------------------------


def _grid(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """An aligned table: numbers (and n/a) right, text left."""
    cells = [[_text(c, v) for c, v in zip(columns, row)] for row in rows]
    columns = [c.removesuffix("_ms") for c in columns]  # durations are shown as durations
    right = [all(row[i] is None or isinstance(row[i], (int, float)) for row in rows) for i in range(len(columns))]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  " + "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()

    return [line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)]


def bars(counts: Mapping[str, int], width: int = BAR_WIDTH) -> list[str]:
    """A terminal bar chart: one line per stage, the widest bar `width` blocks."""
    widest = max(counts.values(), default=0) or 1
    label = max(len(stage) for stage in counts) if counts else 0
    return [
        f"  {stage.ljust(label)}  {n:>10,}  {'█' * max(1 if n else 0, round(width * n / widest))}"
        for stage, n in counts.items()
    ]


def _period_text(since: date | None, until: date | None) -> str:
    if since is None and until is None:
        return "all data"
    first = since.isoformat() if since else "the start"
    last = until.isoformat() if until else "the end"
    return f"{first} to {last} (UTC days, until exclusive)"


def _period(report: Report) -> str:
    return _period_text(report.since, report.until)


def _span(report: Report) -> str:
    if report.first_event is None:
        return "no transitions"
    return f"first transition {report.first_event}, last {report.last_event} (event time)"


#: Stage ratios as (name, numerator stage, denominator stage).
STAGE_RATIOS = (("attraction", "appeal", "aware"), ("curiosity", "ask", "appeal"), ("commitment", "act", "ask"),
                ("affinity", "advocate", "act"))


def skip_notes(report: Report) -> list[str]:
    """Why a stage ratio exceeds 1: the customers who entered its stage by skipping the one before."""
    flows = report.sections["flows"]
    ratios = dict(zip(report.sections["ratios"].columns, report.sections["ratios"].rows[0]))
    if flows.unavailable:
        return []
    notes = []
    for name, stage, before in STAGE_RATIOS:
        if (ratios.get(name) or 0) <= 1:
            continue
        skipped = sum(row[3] for row in flows.rows
                      if row[1] == stage and STAGES.index(before) > (STAGES.index(row[0]) if row[0] in STAGES else -1))
        if skipped:
            entered = report.stage_counts.get(stage, 0)
            notes.append(f"  {name} > 1: {skipped:,} of the {entered:,} customers entering {stage} skipped {before} "
                         "(see How people move)")
    return notes


def render_table(report: Report) -> str:
    out = [f"journey report — brand {report.brand}, {_period(report)}; ClickHouse {report.server}",
           f"data: {_span(report)}"]
    if report.no_data:
        return "\n".join([*out, "", report.no_data[:1].upper() + report.no_data[1:]]) + "\n"
    for key, section in report.sections.items():
        out += ["", section.title]
        if section.unavailable:
            out.append(f"  {section.unavailable}")
        elif key == "stage_entries":
            out += bars(dict(section.rows))
        elif key == "path_shape":
            shape, distance = section.rows[0]
            out.append(f"  {shape} (distance to the bow tie {_text('d', distance)}; 0 = bow tie)")
        elif section.record:
            row = section.rows[0] if section.rows else ()
            labels = [LABELS.get(c, c) for c in section.columns]
            width = max(len(label) for label in labels)
            out += [f"  {label.ljust(width)}  {_text(c, v):>10}" for label, c, v in zip(labels, section.columns, row)]
            if key == "ratios":
                out += skip_notes(report)
        elif not section.rows:
            out.append("  (none in this period)")
        else:
            out += _grid(section.columns, section.rows)
        if (text := note(key, report.window_days)) and not section.unavailable:
            out += textwrap.wrap(text, 100, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(out) + "\n"


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else value  # full precision


def render_csv(report: Report) -> str:
    """Tidy long format: one `brand,since,until,section,key,metric,value` line per number or label.

    Every line carries the brand and the period (empty since/until: unbounded), so files of several
    brands or periods concatenate; section `report` holds the data's span and `no_data`.
    """
    rows: list[tuple[Any, ...]] = [
        ("report", "", "first_event", report.first_event),
        ("report", "", "last_event", report.last_event),
        ("report", "", "no_data", report.no_data),
        ("report", "", "server", report.server),
        ("report", "", "window_days", report.window_days),
    ]
    for key, section in report.sections.items():
        if section.unavailable:
            rows.append((key, "", "unavailable", section.unavailable))
            continue
        keys = SPEC[key].keys
        for row in section.rows:
            if section.record:
                rows += [(key, "", column, value) for column, value in zip(section.columns, row)]
            else:
                name = " -> ".join(str(v) for v in row[:keys])
                rows += [(key, name, column, value) for column, value in zip(section.columns[keys:], row[keys:])]
    period = (report.brand, report.since.isoformat() if report.since else "",
              report.until.isoformat() if report.until else "")
    exact = [(*period, *(_csv_value(v) for v in row)) for row in rows]
    return render(("brand", "since", "until", "section", "key", "metric", "value"), exact, "csv")


FORMATS = ("table", "json", "csv", "html")


def render_report(report: Report, fmt: str = "table") -> str:
    if fmt == "html":
        from reports.html import render_html

        return render_html(report.as_json())
    if fmt == "json":
        return orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        return render_csv(report)
    return render_table(report)

