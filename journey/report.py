"""`journey report`: Kotler's 5A metrics of one brand and period, from the analysts' layer.

Each section runs one file of the query library (sinks/clickhouse/sql/, the same SQL analysts
copy into Grafana or their notebooks); the ratios and the path shape come from the section's
stage counts through `fivea.ratios.PathMetrics`, the domain's one statement of those rules.

The period is a range of UTC days, `[since, until)`: a customer counts in a stage when the
transition that entered it occurred on one of those days (the rollups are daily). Without
`--since` / `--until` the report covers all data.

Three renderings: `table` (headings, a bar chart of the stage counts, n/a for a ratio whose
denominator is 0), `json` (one document: `sections` by name, each a list of rows or one record;
n/a is null) and `csv` (tidy long format `section,key,metric,value`; n/a is empty).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import orjson

from fivea.ratios import PathMetrics
from fivea.stages import PATH
from journey.errors import JourneyError
from journey.output import render
from sinks.clickhouse.analytics import DERIVED_TABLES, VIEWS, LibraryQuery, library_query

if TYPE_CHECKING:
    from sinks.clickhouse.backends import BackendURL, QueryResult

STAGES = tuple(stage.label for stage in PATH)
ALL_TIME = (date(1970, 1, 1), date(2100, 1, 1))  # Date covers both ends on every server version
DEFAULT_TOP = 10
BAR_WIDTH = 40

#: Runs one query with `{name:Type}` parameters.
Runner = Callable[[str, Mapping[str, Any]], "QueryResult"]


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


@dataclass(frozen=True)
class Spec:
    """A report section: its library query (None: computed here), title and typed columns."""

    key: str
    title: str
    query: str | None
    columns: tuple[tuple[str, Callable[[Any], Any]], ...]
    record: bool = False  # one row, shown as "label  value" lines


COUNTS = tuple((stage, _int) for stage in STAGES)
SPECS = (
    Spec("stage_entries", "Customers entering each stage", "stage_entries", (("stage", _str), ("customers", _int))),
    Spec("ratios", "Ratios", None, tuple((name, _float) for name in
                                         ("par", "bar", "attraction", "curiosity", "commitment", "affinity")),
         record=True),
    Spec("path_shape", "Path shape", None, (("shape", _str), ("bow_tie_distance", _float)), record=True),
    Spec("stage_entries_weekly", "Stage entries per week (weeks from Monday)", "stage_entries_weekly",
         (("week", _day), *COUNTS)),
    Spec("influence_mix", "What moved them: influence zone per stage", "influence_mix",
         (("stage", _str), ("customers", _int), ("own", _int), ("other", _int), ("outer", _int),
          ("own_share", _float), ("other_share", _float), ("outer_share", _float))),
    Spec("channel_mix", "Channels per stage", "channel_mix", (("channel", _str), *COUNTS)),
    Spec("time_to_convert", "Time to convert", "time_to_convert",
         (("step", _str), ("customers", _int), ("p25_ms", _opt_int), ("p50_ms", _opt_int),
          ("p75_ms", _opt_int), ("p90_ms", _opt_int))),
    Spec("referral_reach", "Referral reach", "referral_reach",
         (("referred", _int), ("referring_advocates", _int), ("advocates", _int),
          ("viral_coefficient", _float), ("referred_per_referrer", _float)), record=True),
    Spec("top_advocates", "Top advocates (customers they brought)", "top_advocates",
         (("advocate", _str), ("referred", _int))),
    Spec("cohorts_weekly", "Weekly cohorts (by first-seen week; stages entered since)", "cohorts_weekly",
         (("cohort_week", _day), ("customers", _int), *COUNTS[1:], ("par", _float), ("bar", _float))),
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
            *, top: int = DEFAULT_TOP) -> Report:
    """Run every section's query through `run` and return the report (no rendering)."""
    first, last = since or ALL_TIME[0], until or ALL_TIME[1]
    if first >= last:
        raise JourneyError(f"--since {first} must be before --until {last} (until is exclusive)")
    server = str(run("SELECT version() AS version", {}).rows[0][0])
    version = _version(server)
    _check_migrated(run, database)
    params = {"brand": brand, "since": first.isoformat(), "until": last.isoformat(), "limit": top}
    sections: dict[str, Section] = {}
    for spec in SPECS:
        if spec.query is None:
            continue
        section = Section(spec.key, spec.title, tuple(name for name, _ in spec.columns), record=spec.record)
        query = library_query(spec.query)
        if query.requires and version < query.requires:
            section.unavailable = f"needs ClickHouse >= {'.'.join(map(str, query.requires))} (server is {server})"
        else:
            section.rows = _typed(spec, run(query.sql(database), params))
        sections[spec.key] = section
    for key in ("stage_entries", "influence_mix", "current_stage"):  # every stage, even if nobody entered it
        if not sections[key].unavailable:
            sections[key].rows = _zero_filled(SPEC[key], sections[key].rows)
    metrics = PathMetrics.from_counts(dict(sections["stage_entries"].rows))
    ratios = Section("ratios", SPEC["ratios"].title, tuple(name for name, _ in SPEC["ratios"].columns), record=True,
                     rows=[(metrics.par, metrics.bar, *metrics.stage_ratios.values())])
    shape = Section("path_shape", SPEC["path_shape"].title, ("shape", "bow_tie_distance"), record=True,
                    rows=[(metrics.shape, metrics.bow_tie_distance)])
    sections.update(ratios=ratios, path_shape=shape)
    return Report(brand, since, until, server, {spec.key: sections[spec.key] for spec in SPECS})


def _typed(spec: Spec, result: QueryResult) -> list[tuple[Any, ...]]:
    index = {name: i for i, name in enumerate(result.columns)}
    missing = [name for name, _ in spec.columns if name not in index]
    if missing:
        raise JourneyError(f"query {spec.query}.sql returned no column {', '.join(missing)}")
    return [tuple(convert(row[index[name]]) for name, convert in spec.columns) for row in result.rows]


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
                 *, top: int = DEFAULT_TOP) -> Report:
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
                       url.database, brand, since, until, top=top)
    except SinkUnavailable as exc:
        raise JourneyError(str(exc)) from None
    try:
        return collect(backend.query, url.database, brand, since, until, top=top)
    except (SinkUnavailable, QueryError) as exc:
        raise JourneyError(str(exc)) from None
    finally:
        backend.close()


# -- rendering ------------------------------------------------------------------------------

LABELS = {
    "par": "PAR (act / aware)",
    "bar": "BAR (advocate / aware)",
    "attraction": "attraction (appeal / aware)",
    "curiosity": "curiosity (ask / appeal)",
    "commitment": "commitment (act / ask)",
    "affinity": "affinity (advocate / act)",
    "referred": "referred new customers",
    "referring_advocates": "advocates who referred",
    "advocates": "customers entering advocate",
    "viral_coefficient": "viral coefficient (referred / advocates)",
    "referred_per_referrer": "referred per referring advocate",
}


def duration(ms: int | None) -> str:
    """Milliseconds for people: 850ms, 42s, 3m 20s, 5h 12m, 2d 4h."""
    if ms is None:
        return "n/a"
    seconds = ms / 1000
    if seconds < 1:
        return f"{ms}ms"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def _text(column: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if column.endswith("_ms"):
        return duration(value)
    if column.endswith("_share"):
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value or "(none)"


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


def _period(report: Report) -> str:
    if report.since is None and report.until is None:
        return "all data"
    since = report.since.isoformat() if report.since else "the start"
    until = report.until.isoformat() if report.until else "the end"
    return f"{since} to {until} (UTC days, until exclusive)"


def render_table(report: Report) -> str:
    out = [f"journey report — brand {report.brand}, {_period(report)}; ClickHouse {report.server}"]
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
        elif not section.rows:
            out.append("  (none in this period)")
        else:
            out += _grid(section.columns, section.rows)
    return "\n".join(out) + "\n"


def render_csv(report: Report) -> str:
    """Tidy long format: one `section,key,metric,value` line per number or label."""
    rows: list[tuple[Any, ...]] = []
    for key, section in report.sections.items():
        if section.unavailable:
            rows.append((key, "", "unavailable", section.unavailable))
            continue
        for row in section.rows:
            if section.record:
                rows += [(key, "", column, value) for column, value in zip(section.columns, row)]
            else:
                rows += [(key, row[0], column, value) for column, value in zip(section.columns[1:], row[1:])]
    exact = [tuple(repr(v) if isinstance(v, float) else v for v in row) for row in rows]  # full precision
    return render(("section", "key", "metric", "value"), exact, "csv")


def render_report(report: Report, fmt: str = "table") -> str:
    if fmt == "json":
        return orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        return render_csv(report)
    return render_table(report)

