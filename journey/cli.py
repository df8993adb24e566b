"""The `journey` command. Entry points only translate: parse -> call the core or an adapter."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from journey.errors import JourneyError
from journey.settings import Settings

KAFKA = ("kafka_brokers", "topic_clickstream", "topic_purchases", "topic_shares", "topic_segment")
TOPICS = (*KAFKA, "topic_transitions", "topic_deadletter", "topic_rekeyed", "topic_identity", "partitions")
CLICKHOUSE = ("clickhouse_url", "clickhouse_password")
CLICKHOUSE_AT_SCALE = (*CLICKHOUSE, "clickhouse_cluster")


def _add_settings(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    group = parser.add_argument_group("settings (flag, or environment variable JOURNEY_<NAME>)")
    for name in names:
        field = Settings.model_fields[name]
        secret = field.annotation is not None and "SecretStr" in str(field.annotation)
        shown = "" if secret or field.default is None else f" [default: {field.default}]"
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"setting_{name}",
            metavar=name.split("_")[-1].upper(),
            help=f"{field.description or name.replace('_', ' ')}{shown}",
        )


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise JourneyError(f"invalid settings: {problems}") from None


def backend_url(settings: Settings) -> Any:
    from sinks.clickhouse.backends import BackendURL

    try:
        return BackendURL.parse(settings.clickhouse_url, settings.clickhouse_password)
    except ValueError as exc:
        raise JourneyError(f"JOURNEY_CLICKHOUSE_URL: {exc}") from None


def _lines(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from sys.stdin.buffer
        return
    try:
        with open(path, "rb") as handle:
            yield from handle
    except OSError as exc:
        raise JourneyError(f"cannot read {path}: {exc.strerror}") from None


# -- commands -------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from journey.worker import run_worker

    run_worker(settings_from(args))
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from journey.produce import produce

    sent, skipped = produce(_lines(args.events), settings_from(args), topic=args.topic,
                            progress=None if args.quiet else sys.stderr, segment=args.format == "segment")
    return 0 if sent or not skipped else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    from sinks.clickhouse.placement import Placement
    from sinks.clickhouse.sink import RebuildNeeded, migrate
    from sinks.contract import SinkUnavailable

    settings = settings_from(args)
    url = backend_url(settings)
    placement = Placement(settings.clickhouse_cluster)
    try:
        dialect, statements = migrate(url, rebuild=args.rebuild, placement=placement)
    except (SinkUnavailable, RebuildNeeded) as exc:
        raise JourneyError(str(exc)) from None
    if args.print:
        print(";\n\n".join(statements) + ";")
    flavour = "current" if dialect.modern else "legacy (DateTime, no LowCardinality)"
    where = f", ON CLUSTER {placement.cluster}" if placement.cluster else ""
    print(
        f"migrated {url}: {len(statements)} statements, server {'.'.join(map(str, dialect.version))} "
        f"({flavour} dialect{where})",
        file=sys.stderr,
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from fivea import replay
    from journey.gc_tuning import tune_gc_for_batches
    from journey.rules_file import load_rules
    from schemas.rejections import Rejection, decode

    from schemas.segment import Ignored, decode_segment

    rules = load_rules(args.rules)
    tune_gc_for_batches()  # it holds every event: the default collector rescans them all, again and again
    events, rejected, ignored = [], 0, 0
    for number, line in enumerate(_lines(args.events), 1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        if args.format == "segment":
            result = decode_segment(line, args.max_event_bytes, rules.segment, args.segment_brand)
        else:
            result = decode(line, args.max_event_bytes)
        if isinstance(result, Rejection):
            rejected += 1
            print(f"line {number}: {result.reason} ({result.code})", file=sys.stderr)
        elif isinstance(result, Ignored):
            ignored += 1
        else:
            events.append(result)
    out: IO[bytes] = sys.stdout.buffer
    count = 0
    for transition in replay(events, rules):
        out.write(transition.model_dump_json().encode() + b"\n")
        count += 1
    out.flush()
    skipped = f", {ignored:,} messages without journey data ignored" if ignored else ""
    print(f"replayed {len(events):,} events: {count:,} transitions, {rejected:,} invalid lines skipped{skipped}",
          file=sys.stderr)
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from journey.kafka_admin import create_topics
    from journey.kafka_security import kafka_client_config

    settings = settings_from(args)
    created = create_topics(settings.broker_list, {t: settings.partitions for t in settings.all_topics},
                            security=kafka_client_config(settings))
    for topic in settings.all_topics:
        state = "created" if topic in created else "exists"
        print(f"{topic:<32} {settings.partitions} partitions  {state}")
    return 0


def _argtype(parse):
    """An argparse type from a parser raising ValueError: its message becomes the usage error."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert


def cmd_generate(args: argparse.Namespace) -> int:
    import os
    from dataclasses import replace

    from journey.generate import PRESETS, Pacer, Progress, Simulation, lagged, publish, write_lines

    overrides = {name: getattr(args, f"profile_{name}") for name in args.profile_overrides
                 if getattr(args, f"profile_{name}") is not None}
    try:
        profile = replace(PRESETS[args.preset], **overrides)
        sim = Simulation(args.customers, seed=args.seed, start=args.start, days=args.days, brand=args.brand,
                         profile=profile, malformed=args.malformed)
        Pacer(args.rate)  # validates --rate before anything is opened
    except ValueError as exc:
        raise JourneyError(str(exc)) from None
    lags = dict(args.lag or ())
    if lags and args.rate is None:
        raise JourneyError("--lag needs --rate: the lag is in seconds of delivery, at that many events per second")
    segment = args.format == "segment"
    lines = lagged(sim.lines(segment), lags, args.rate) if lags else sim.lines(segment)
    progress = Progress(None if args.quiet else sys.stderr)
    if args.to_kafka:
        settings = settings_from(args)
        publish(lines, settings, pacer=Pacer(args.rate), progress=progress, segment=segment)
        target = f"Kafka {settings.kafka_brokers}"
    else:
        try:
            out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
        except OSError as exc:
            raise JourneyError(f"cannot write {args.output}: {exc.strerror}") from None
        target = "stdout" if args.output == "-" else args.output
        try:
            write_lines(lines, out, pacer=Pacer(args.rate, before_sleep=out.flush), progress=progress)
        except BrokenPipeError:  # `journey generate | head`: stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            progress.done(f"generated {progress.lines:,} events; {target} was closed, stopped")
            return 141
        finally:
            if out is not sys.stdout.buffer:
                out.close()
    bad = f" ({progress.malformed:,} malformed)" if args.malformed else ""
    progress.done(
        f"generated {progress.lines:,} events{bad} from {sim.population:,} customers "
        f"({sim.referred:,} referred) in {progress.elapsed:.1f}s ({progress.lines / progress.elapsed:,.0f}/s); "
        f"preset {args.preset}, seed {args.seed} -> {target}"
    )
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from journey.output import render
    from journey.sql_endpoint import query_owner
    from sinks.clickhouse.backends import ChdbLocked, QueryError
    from sinks.contract import SinkUnavailable

    url = backend_url(settings_from(args))
    query, params = args.query, {}
    if args.file:
        from sinks.clickhouse.analytics import LibraryQuery

        try:
            text = Path(args.file).read_text()
        except OSError as exc:
            raise JourneyError(f"cannot read {args.file}: {exc.strerror}") from None
        library_query = LibraryQuery.parse(Path(args.file).stem, text)
        try:  # the library names its database `journey`: the configured one instead
            query = library_query.sql(url.database)
        except ValueError as exc:
            raise JourneyError(str(exc)) from None
        params = library_query.defaults()  # `-- params: name Type = default` in its header
    elif not query:
        raise JourneyError("give a query, or --file FILE")
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            raise JourneyError(f"--param {item!r}: use NAME=VALUE")
        params[name] = value
    try:
        backend = url.open()
        try:
            result = backend.query(query, params)
        finally:
            backend.close()
    except ChdbLocked as exc:
        if not exc.owner:
            raise JourneyError(str(exc)) from None
        result = query_owner(exc.owner, query, params)
    except (SinkUnavailable, QueryError) as exc:
        raise JourneyError(str(exc)) from None
    sys.stdout.write(render(result.columns, result.rows, args.format))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from journey.report import build_report, render_report

    if args.format == "html" and args.output is None and sys.stdout.isatty():
        raise JourneyError("--format html writes a web page: add -o FILE (e.g. -o report.html)")
    url = backend_url(settings_from(args))
    report = build_report(url, args.brand, args.since, args.until, top=args.top, window_days=args.window)
    text = render_report(report, args.format)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise JourneyError(f"cannot write {args.output}: {exc.strerror}") from None
    print(f"wrote {Path(args.output).resolve()}", file=sys.stderr)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from journey.stack import up

    return up(Path(args.workdir), clickhouse=args.clickhouse)


def cmd_down(args: argparse.Namespace) -> int:
    from journey.stack import down

    return down(Path(args.workdir))


def cmd_demo(args: argparse.Namespace) -> int:
    from journey.demo import run_demo

    return run_demo(Path(args.workdir), customers=args.customers, seed=args.seed, keep=args.keep, rate=args.rate,
                    events=Path(args.events) if args.events else None, segment=args.format == "segment")


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journey",
        description="Place every customer on Kotler's 5A path (aware -> appeal -> ask -> act -> advocate) "
        "from Kafka events, and store each stage transition in ClickHouse.",
        epilog="Every setting is also read from JOURNEY_<NAME> environment variables; flags win.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("worker", help="run a stream worker (scale out by starting more)",
                       description="Consume the event topics, track each customer's stage, publish "
                       "transitions and store them in ClickHouse. Serves /metrics, /healthz, /readyz.")
    _add_settings(p, [name for name in Settings.model_fields])
    p.set_defaults(run=cmd_worker)

    p = sub.add_parser("produce", help="publish JSON Lines events to their topics, keyed by customer",
                       description="Send each line to the topic of its `type`, keyed by customer_id (else "
                       "anonymous_id); with --format segment, Segment Spec messages to the Segment topic, keyed "
                       "by userId (else anonymousId).")
    p.add_argument("events", metavar="EVENTS.jsonl", help="file of JSON Lines ('-' for stdin)")
    p.add_argument("--format", choices=("journey", "segment"), default="journey",
                   help="journey: our event contract (DESIGN.md §2); segment: Segment Spec messages "
                   "(track, page, screen, identify, alias) [default: %(default)s]")
    p.add_argument("--topic", help="send every line as is to this topic (e.g. to test bad input)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _add_settings(p, KAFKA)
    p.set_defaults(run=cmd_produce)

    p = sub.add_parser("migrate", help="create the ClickHouse database and tables (idempotent)")
    p.add_argument("--print", action="store_true", help="also print the DDL that was applied")
    p.add_argument("--rebuild", action="store_true",
                   help="move a transitions table created before corrections (no `retracted` column) to the "
                   "current layout: rows copied, the old table kept as transitions_before_corrections, the "
                   "analysts' layer rebuilt (stop the workers first)")
    _add_settings(p, CLICKHOUSE_AT_SCALE)
    p.add_argument("--cluster", dest="setting_clickhouse_cluster", metavar="NAME",
                   help="same as --clickhouse-cluster: render every table for this cluster of the servers' "
                   "remote_servers (ON CLUSTER, Replicated engines, Distributed tables in front)")
    p.set_defaults(run=cmd_migrate)

    p = sub.add_parser("replay", help="offline: events in, transitions out (the stream's reference)",
                       description="Apply JSON Lines events in event-time order through the same core as "
                       "the stream and print the transitions as JSON Lines. Invalid lines are reported on "
                       "stderr with their line number and skipped.")
    p.add_argument("events", metavar="EVENTS.jsonl", help="file of JSON Lines ('-' for stdin)")
    p.add_argument("--format", choices=("journey", "segment"), default="journey",
                   help="journey: our event contract; segment: Segment Spec messages, mapped by the rules' "
                   "Segment table as the worker maps the Segment topic [default: %(default)s]")
    p.add_argument("--segment-brand", default=Settings.model_fields["segment_brand"].default, metavar="BRAND",
                   help="brand of Segment messages (JOURNEY_SEGMENT_BRAND in the worker) [default: %(default)s]")
    p.add_argument("--rules", type=Path, metavar="FILE", help="TOML rule table (default: DESIGN.md §1)")
    p.add_argument("--max-event-bytes", type=int, default=Settings.model_fields["max_event_bytes"].default,
                   help="longer lines are rejected, as the worker does [default: %(default)s]")
    p.set_defaults(run=cmd_replay)

    p = sub.add_parser("sql", help="query the configured ClickHouse (server or chDB, even while a worker holds it)",
                       description="Run one query against JOURNEY_CLICKHOUSE_URL and print the result. For a "
                       "chDB directory held by a running worker or demo, the query goes through that process "
                       "(read-only statements only).")
    p.add_argument("query", nargs="?", help="SQL; parameters as {name:Type}, e.g. WHERE brand = {brand:String}")
    p.add_argument("--file", metavar="FILE",
                   help="run a SQL file as it is, e.g. one of the query library (sinks/clickhouse/sql): its "
                   "`-- params:` header gives each parameter's default; `journey.` names the configured database")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a query parameter (overrides the file's default)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="[default: %(default)s]")
    _add_settings(p, CLICKHOUSE)
    p.set_defaults(run=cmd_sql)

    from journey.report import DEFAULT_TOP, DEFAULT_WINDOW_DAYS, FORMATS, parse_day, parse_window

    p = sub.add_parser("report", help="Kotler's 5A metrics of a brand and period (PAR, BAR, shape, flows, ...), "
                       "as text, JSON, CSV or an HTML page with charts",
                       description="Print, for one brand and period, the customers entering each stage (with a bar "
                       "chart), PAR, BAR and the four stage ratios (n/a when a denominator is 0), the path shape "
                       "and its distance to the bow tie, how people move between stages (every from -> to move, "
                       "skips included), weekly entries, the influence-zone and channel mix, the stage counts and "
                       "ratios by first touch (the acquisition channel, influence zone and campaign of each person's "
                       "first contact), funnel conversion within a window (--window) beside the period counts, time "
                       "to convert, referral reach, weekly cohorts and current stages. Each section runs a file of the query "
                       "library (sinks/clickhouse/sql/; see docs/analysts.md). The period is UTC days "
                       "[since, until): a customer counts in a stage when they entered it on one of those days. "
                       "The report states the first and last transition it covers, says so when the brand or "
                       "period has no data, and marks weeks the period or the data cuts short as partial.",
                       epilog="example: journey report --since 2026-01-01 --until 2026-02-01 --format html "
                       "-o january.html  (one self-contained file: open it in any browser, offline)")
    p.add_argument("--brand", default="default", help="[default: %(default)s]")
    p.add_argument("--since", type=parse_day, metavar="DATE", help="first day, YYYY-MM-DD (UTC) [default: all data]")
    p.add_argument("--until", type=parse_day, metavar="DATE",
                   help="day after the last one, YYYY-MM-DD (UTC, exclusive) [default: all data]")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table for people; json (one document) or csv (brand,since,until,section,key,metric,value) "
                   "for tools; html: one self-contained page with charts (no network needed to open it) "
                   "[default: %(default)s]")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the report to FILE instead of standard output (needed for html on a terminal)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="N", help="advocates listed [default: %(default)s]")
    p.add_argument("--window", type=parse_window, default=DEFAULT_WINDOW_DAYS, metavar="DAYS",
                   help="conversion window, whole days (30d or 30): the share of the persons first seen in the "
                   "period that entered each stage within that many days of their first contact [default: %(default)sd]")
    _add_settings(p, CLICKHOUSE)
    p.set_defaults(run=cmd_report)

    p = sub.add_parser("topics", help="create the journey topics with their partition count")
    _add_settings(p, TOPICS)
    p.set_defaults(run=cmd_topics)

    from journey.generate import DEFAULT_START, PRESETS, parse_lag, parse_start

    p = sub.add_parser("generate", help="simulate customers walking the 5A path (JSON Lines or Kafka)",
                       description="Simulate a population walking the 5A path: channels and campaigns, "
                       "skipped stages, advocates whose shares bring new customers. Same seed, same bytes. "
                       "Writes JSON Lines (stdout by default) or publishes each event to its topic keyed by "
                       "customer_id. Progress every second and a summary go to stderr. See docs/generator.md.")
    p.add_argument("--customers", type=int, default=1000,
                   help="arriving customers; advocates bring more [default: %(default)s]")
    p.add_argument("--seed", type=int, default=5, help="random seed: same seed, same events [default: %(default)s]")
    p.add_argument("--preset", choices=sorted(PRESETS), default="funnel",
                   help="path profile giving Kotler's shape of that name [default: %(default)s]")
    p.add_argument("--days", type=float, default=30, help="time span of the data [default: %(default)s]")
    p.add_argument("--start", type=parse_start, default=DEFAULT_START, metavar="TIME",
                   help=f"start of the span: RFC 3339 or a date, UTC if no offset [default: {DEFAULT_START.date()}]")
    p.add_argument("--brand", default="default", help="brand of every event [default: %(default)s]")
    p.add_argument("--malformed", type=float, default=0.0, metavar="FRACTION",
                   help="fraction of lines that are bad records (truncated JSON, missing field, wrong type, "
                   "naive timestamp, unknown type) [default: %(default)s]")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", default="-", metavar="FILE", help="file to write ('-' for stdout)")
    where.add_argument("--to-kafka", action="store_true",
                       help="publish to the input topics (malformed lines to the clickstream topic)")
    p.add_argument("--format", choices=("journey", "segment"), default="journey",
                   help="journey: our event contract; segment: each event as the Segment Spec message a tracker "
                   "would send (to the Segment topic with --to-kafka) [default: %(default)s]")
    p.add_argument("--rate", type=float, metavar="EVENTS_PER_S", help="at most this many events per second")
    p.add_argument("--lag", type=_argtype(parse_lag), action="append", metavar="TYPE=SECONDS",
                   help="deliver one event type that many seconds behind the others, as a slower producing "
                   "service does (e.g. --lag purchase=15 --lag share=20; needs --rate). The stream merges "
                   "the late events and corrects what it published (README, Semantics)")
    p.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")
    tuning = p.add_argument_group("profile overrides (default: the preset's value)")
    overrides = {  # PathProfile field -> (flag, help)
        "appeal": ("p-appeal", "P(aware -> appeal)"),
        "ask": ("p-ask", "P(appeal -> ask)"),
        "act": ("p-act", "P(ask -> act): a purchase"),
        "advocate": ("p-advocate", "P(act -> advocate) for completed buyers"),
        "impulse_buy": ("p-impulse-buy", "P(aware -> act directly)"),
        "ask_without_appeal": ("p-ask-without-appeal", "P(aware -> ask directly): research first"),
        "advocate_without_buying": ("p-advocate-without-buying", "P(appeal -> advocate without buying)"),
        "refund": ("p-refund", "P(a purchase is refunded): no act signal"),
        "referrals_per_share": ("referrals-per-share", "mean new customers one share brings"),
        "mean_delay_hours": ("mean-delay-hours", "mean time between steps, in hours"),
        "noise_events": ("noise-events", "mean extra same-stage events per stage"),
        "browse_after_purchase": ("p-browse-after-purchase", "P(a buyer keeps browsing after buying)"),
        "anonymous": ("p-anonymous", "P(a visitor browses anonymously, under a device id, until signing in)"),
        "never_sign_in": ("p-never-sign-in", "P(an anonymous visitor never signs in)"),
        "second_device": ("p-second-device", "P(an anonymous visitor also browses on a second device)"),
    }
    for name, (flag, text) in overrides.items():
        values = ", ".join(f"{preset} {getattr(profile, name):g}" for preset, profile in PRESETS.items())
        tuning.add_argument(f"--{flag}", dest=f"profile_{name}", type=float, metavar="X", help=f"{text} [{values}]")
    _add_settings(p, KAFKA)
    p.set_defaults(run=cmd_generate, profile_overrides=tuple(overrides))

    p = sub.add_parser("up", help="start a local stack that stays: broker, ClickHouse, worker",
                       description="Start a Kafka-compatible broker (Tansu, memory only), ClickHouse (embedded "
                       "chDB, or Debian's clickhouse-server) and one worker in the background; create the topics, "
                       "migrate, and print every address and the `export JOURNEY_...` lines that point the other "
                       "commands at it. `journey down` stops it; a second `up` says it is already running.")
    p.add_argument("--workdir", default=".journey/local",
                   help="where the stack keeps its state (stack.json, env.sh), logs and chDB data [default: %(default)s]")
    p.add_argument("--clickhouse", choices=("chdb", "server"), default="chdb",
                   help="embedded chDB (nothing to install) or clickhouse-server [default: %(default)s]")
    p.set_defaults(run=cmd_up)

    p = sub.add_parser("down", help="stop the local stack `journey up` started",
                       description="Stop the worker (it commits first), the broker and a clickhouse-server that "
                       "`journey up` started. The ClickHouse data stays; the broker's topics (in memory) do not.")
    p.add_argument("--workdir", default=".journey/local", help="the stack's directory [default: %(default)s]")
    p.set_defaults(run=cmd_down)

    p = sub.add_parser("demo", help="run the whole pipeline locally: broker, ClickHouse, worker, data",
                       description="Start a local Tansu broker and an embedded ClickHouse (chDB), migrate, run "
                       "a worker, stream a simulated population (or your own events: --events FILE) into Kafka "
                       "while a live view shows the 5A path, wait until ClickHouse holds what the offline replay "
                       "predicts, then print the stage counts, write the 5A report as an HTML page with charts "
                       "(WORKDIR/report.html), print where it and the data are, and stop what it started.")
    p.add_argument("--workdir", default=".journey/demo", help="where the demo keeps its data and logs")
    p.add_argument("--events", metavar="FILE",
                   help="your own events (JSON Lines, one event per line in our contract or, with --format "
                   "segment, Segment Spec messages: README, 'Run it on your own events') instead of simulated "
                   "customers")
    p.add_argument("--format", choices=("journey", "segment"), default="journey",
                   help="the format of --events [default: %(default)s]")
    p.add_argument("--customers", type=int, default=3000, help="customers to simulate [default: %(default)s]")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--rate", type=float, default=3000, help="events/s fed to Kafka [default: %(default)s]")
    p.add_argument("--keep", action="store_true", help="keep everything running (and the view live) until Ctrl-C")
    p.set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python narrates every connection attempt; its failures become our one-line errors.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)  # likewise, with tracebacks
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # e.g. a refused InitProducerId, said once by us
    try:
        return args.run(args)
    except JourneyError as exc:
        print(f"journey {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
