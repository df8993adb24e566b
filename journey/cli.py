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

KAFKA = ("kafka_brokers", "topic_clickstream", "topic_purchases", "topic_shares")
TOPICS = (*KAFKA, "topic_transitions", "topic_deadletter", "topic_rekeyed", "partitions")
CLICKHOUSE = ("clickhouse_url", "clickhouse_password")


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
                            progress=None if args.quiet else sys.stderr)
    return 0 if sent or not skipped else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    from sinks.clickhouse.sink import migrate
    from sinks.contract import SinkUnavailable

    settings = settings_from(args)
    url = backend_url(settings)
    try:
        dialect, statements = migrate(url)
    except SinkUnavailable as exc:
        raise JourneyError(str(exc)) from None
    if args.print:
        print(";\n\n".join(statements) + ";")
    flavour = "current" if dialect.modern else "legacy (DateTime, no LowCardinality)"
    print(
        f"migrated {url}: {len(statements)} statements, server {'.'.join(map(str, dialect.version))} "
        f"({flavour} dialect)",
        file=sys.stderr,
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from fivea import replay
    from journey.rules_file import load_rules
    from schemas.rejections import Rejection, decode

    rules = load_rules(args.rules)
    events, rejected = [], 0
    for number, line in enumerate(_lines(args.events), 1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        result = decode(line, args.max_event_bytes)
        if isinstance(result, Rejection):
            rejected += 1
            print(f"line {number}: {result.reason} ({result.code})", file=sys.stderr)
        else:
            events.append(result)
    out: IO[bytes] = sys.stdout.buffer
    count = 0
    for transition in replay(events, rules):
        out.write(transition.model_dump_json().encode() + b"\n")
        count += 1
    out.flush()
    print(f"replayed {len(events):,} events: {count:,} transitions, {rejected:,} invalid lines skipped",
          file=sys.stderr)
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from journey.kafka_admin import create_topics

    settings = settings_from(args)
    created = create_topics(settings.broker_list, {t: settings.partitions for t in settings.all_topics})
    for topic in settings.all_topics:
        state = "created" if topic in created else "exists"
        print(f"{topic:<32} {settings.partitions} partitions  {state}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from journey.generate import generate, to_jsonl

    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    count = 0
    try:
        for event in generate(args.customers, seed=args.seed, days=args.days, brand=args.brand):
            out.write(to_jsonl(event))
            count += 1
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    print(f"generated {count:,} events (seed {args.seed})", file=sys.stderr)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from journey.output import render
    from journey.sql_endpoint import query_owner
    from sinks.clickhouse.backends import ChdbLocked, QueryError
    from sinks.contract import SinkUnavailable

    params = dict(p.split("=", 1) for p in args.param)
    url = backend_url(settings_from(args))
    try:
        backend = url.open()
        try:
            result = backend.query(args.query, params)
        finally:
            backend.close()
    except ChdbLocked as exc:
        if not exc.owner:
            raise JourneyError(str(exc)) from None
        result = query_owner(exc.owner, args.query, params)
    except (SinkUnavailable, QueryError) as exc:
        raise JourneyError(str(exc)) from None
    sys.stdout.write(render(result.columns, result.rows, args.format))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from journey.demo import run_demo

    return run_demo(Path(args.workdir), customers=args.customers, seed=args.seed, keep=args.keep, rate=args.rate)


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
                       description="Send each line to the topic of its `type`, keyed by customer_id.")
    p.add_argument("events", metavar="EVENTS.jsonl", help="file of JSON Lines ('-' for stdin)")
    p.add_argument("--topic", help="send every line as is to this topic (e.g. to test bad input)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _add_settings(p, KAFKA)
    p.set_defaults(run=cmd_produce)

    p = sub.add_parser("migrate", help="create the ClickHouse database and tables (idempotent)")
    p.add_argument("--print", action="store_true", help="also print the DDL that was applied")
    _add_settings(p, CLICKHOUSE)
    p.set_defaults(run=cmd_migrate)

    p = sub.add_parser("replay", help="offline: events in, transitions out (the stream's reference)",
                       description="Apply JSON Lines events in event-time order through the same core as "
                       "the stream and print the transitions as JSON Lines. Invalid lines are reported on "
                       "stderr with their line number and skipped.")
    p.add_argument("events", metavar="EVENTS.jsonl", help="file of JSON Lines ('-' for stdin)")
    p.add_argument("--rules", type=Path, metavar="FILE", help="TOML rule table (default: DESIGN.md §1)")
    p.add_argument("--max-event-bytes", type=int, default=Settings.model_fields["max_event_bytes"].default,
                   help="longer lines are rejected, as the worker does [default: %(default)s]")
    p.set_defaults(run=cmd_replay)

    p = sub.add_parser("sql", help="query the configured ClickHouse (server or chDB, even while a worker holds it)",
                       description="Run one query against JOURNEY_CLICKHOUSE_URL and print the result. For a "
                       "chDB directory held by a running worker or demo, the query goes through that process "
                       "(read-only statements only).")
    p.add_argument("query", help="SQL; parameters as {name:Type}, e.g. WHERE brand = {brand:String}")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a query parameter")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="[default: %(default)s]")
    _add_settings(p, CLICKHOUSE)
    p.set_defaults(run=cmd_sql)

    p = sub.add_parser("topics", help="create the journey topics with their partition count")
    _add_settings(p, TOPICS)
    p.set_defaults(run=cmd_topics)

    p = sub.add_parser("generate", help="simulate customers walking the 5A path (JSON Lines)")
    p.add_argument("--customers", type=int, default=1000, help="arriving customers [default: %(default)s]")
    p.add_argument("--seed", type=int, default=5, help="random seed: same seed, same events")
    p.add_argument("--days", type=int, default=30, help="time span of the data [default: %(default)s]")
    p.add_argument("--brand", default="default", help="brand of every event [default: %(default)s]")
    p.add_argument("-o", "--output", default="-", help="file to write ('-' for stdout)")
    p.set_defaults(run=cmd_generate)

    p = sub.add_parser("demo", help="run the whole pipeline locally: broker, ClickHouse, worker, data",
                       description="Start a local Tansu broker and an embedded ClickHouse (chDB), migrate, run "
                       "a worker, stream a simulated population into Kafka while a live view shows the 5A "
                       "path, then print the stage counts and where the data is.")
    p.add_argument("--workdir", default=".journey/demo", help="where the demo keeps its data and logs")
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
    try:
        return args.run(args)
    except JourneyError as exc:
        print(f"journey {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
