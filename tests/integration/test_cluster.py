"""journey5a on a real ClickHouse cluster: 2 shards x 2 replicas of Debian's clickhouse-server
18.16 coordinated by Debian's ZooKeeper (the session's `clickhouse_cluster`), fed through the
real broker by real workers. Each run, faults included, ends equal to `journey replay`.

The cluster is started once per session; each test has its own database (and so its own
ZooKeeper paths). A test that stops a server or ZooKeeper starts it again before it ends.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver import Client
from kafka import KafkaConsumer, TopicPartition

from journey.local_cluster import ClusterNode, LocalCluster
from schemas import Transition
from tests.integration.test_analytics import assert_report, expected_sections, journey_report
from tests.integration.test_faults import write_events
from tests.support.pipeline import Pipeline, metric, wait_until

pytestmark = pytest.mark.integration

ALL_TIME = (date(1970, 1, 1), date(2100, 1, 1))
# Small, frequent sink batches: an outage then lands mid-stream, with batches before and after it.
SMALL_BATCHES = {"JOURNEY_SINK_BATCH_ROWS": "200", "JOURNEY_SINK_BATCH_SECONDS": "0.2"}


@pytest.fixture
def cluster_pipeline(broker, clickhouse_cluster: LocalCluster, tmp_path: Path) -> Any:
    """Topics, and a database migrated ON CLUSTER; the workers write through the first server."""
    pipe = Pipeline(broker, clickhouse_cluster.entry.service, tmp_path,
                    settings_env={"JOURNEY_CLICKHOUSE_CLUSTER": clickhouse_cluster.name})
    pipe.setup()
    yield pipe
    pipe.stop_workers()


def node_query(node: ClusterNode, sql: str) -> list[tuple]:
    client = Client("127.0.0.1", port=node.tcp_port, send_receive_timeout=60)
    try:
        return client.execute(sql)
    finally:
        client.disconnect()


def local_rows(node: ClusterNode, database: str) -> list[tuple]:
    """What one server holds itself (its shard's replica), replicated writes caught up first."""
    node_query(node, f"SYSTEM SYNC REPLICA {database}.transitions_local")
    return sorted(node_query(node, f"SELECT brand, customer_id, seq, to_stage, occurred_at "
                                   f"FROM {database}.transitions_local FINAL"))


def assert_replicas_agree_and_customers_stay_on_one_shard(cluster: LocalCluster, database: str) -> None:
    shards = {}
    for shard in (1, 2):
        first, second = (local_rows(node, database) for node in cluster.shard(shard))
        assert first == second, f"the replicas of shard {shard} differ"
        assert first, f"shard {shard} holds nothing: the sharding key does not spread customers"
        shards[shard] = {(brand, customer) for brand, customer, *_ in first}
    assert not shards[1] & shards[2], "a customer's rows are on both shards"


def halves(events: Path) -> tuple[Path, Path]:
    """The file's customers in two halves (by a hash of the id), each in its own file, so the
    second half can be produced during an outage: rows that must be written while it lasts."""
    import zlib

    first, second = [], []
    for line in events.read_bytes().splitlines(keepends=True):
        customer = json.loads(line)["customer_id"]
        (second if zlib.crc32(customer.encode()) % 2 else first).append(line)
    paths = events.with_suffix(".1.jsonl"), events.with_suffix(".2.jsonl")
    for path, lines in zip(paths, (first, second)):
        path.write_bytes(b"".join(lines))
    return paths


def sink_offsets(pipeline: Pipeline) -> dict[int, int | None]:
    """The sink group's committed offsets of the transitions topic (read without joining the group)."""
    consumer = KafkaConsumer(bootstrap_servers=pipeline.broker.address, group_id=f"{pipeline.name}-group-sink",
                             enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(pipeline.topic("transitions"), p))
                for p in range(pipeline.partitions)}
    finally:
        consumer.close()


def test_stream_equals_replay_through_the_cluster_and_migrate_runs_again(
        cluster_pipeline: Pipeline, clickhouse_cluster: LocalCluster, tmp_path: Path) -> None:
    pipeline, database = cluster_pipeline, cluster_pipeline.database
    events = write_events(tmp_path / "events.jsonl", 600, seed=301)
    pipeline.journey("produce", str(events))
    pipeline.start_worker(**SMALL_BATCHES)
    pipeline.assert_equals_replay(events)
    assert_replicas_agree_and_customers_stay_on_one_shard(clickhouse_cluster, database)

    # Every server has every table, with the names analysts use in front.
    for node in clickhouse_cluster.nodes:
        engines = dict(node_query(node, f"SELECT name, engine FROM system.tables WHERE database = '{database}'"))
        assert engines["transitions"] == engines["customer_state"] == "Distributed"
        assert engines["transitions_local"] == "ReplicatedReplacingMergeTree"
        assert engines["stage_entries"] == "View"

    # A second migration changes nothing (its backfill folds the same rows into idempotent states).
    before = journey_report(pipeline_url(pipeline))
    again = pipeline.journey("migrate", "--print")
    assert "ON CLUSTER " + clickhouse_cluster.name in again.stdout.decode()
    assert "ON CLUSTER" in again.stderr.decode()
    assert journey_report(pipeline_url(pipeline)) == before

    # `journey report` through the Distributed tables: every number equals the replay's.
    transitions = [Transition.model_validate(row) for row in pipeline.replay(events)]
    assert_report(before, expected_sections(transitions, "default", *ALL_TIME))


def pipeline_url(pipeline: Pipeline) -> Any:
    from sinks.clickhouse.backends import BackendURL

    return BackendURL.parse(pipeline.clickhouse_url)


def _answers(url: Any, queries: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Each query's rows (sorted, floats rounded), or the server's refusal."""
    from sinks.clickhouse.backends import QueryError

    backend = url.open()
    out: dict[str, Any] = {}
    try:
        for name, (sql, params) in queries.items():
            try:
                rows = backend.query(sql, params).rows
            except QueryError as exc:
                out[name] = ("refused", str(exc).split(":")[0])
                continue
            out[name] = sorted((tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows),
                               key=repr)
    finally:
        backend.close()
    return out


def test_late_purchases_are_corrected_on_the_cluster(
        cluster_pipeline: Pipeline, clickhouse_cluster: LocalCluster, tmp_path: Path) -> None:
    """Corrections (issue 13) through the cluster: the clicks arrive first, the purchases and
    shares after them, so the worker publishes journeys it must then retract and correct. Each
    retraction lands on its row's shard; the live rows equal the replay."""
    from journey.generate import PathProfile, generate, to_jsonl

    pipeline = cluster_pipeline
    lines = [to_jsonl(e) for e in generate(500, seed=337, profile=PathProfile(browse_after_purchase=0.6))]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(lines))
    clicks, late = tmp_path / "clicks.jsonl", tmp_path / "late.jsonl"
    clicks.write_bytes(b"".join(line for line in lines if b'"clickstream"' in line))
    late.write_bytes(b"".join(line for line in lines if b'"clickstream"' not in line))
    pipeline.journey("produce", str(clicks))
    pipeline.start_worker(**SMALL_BATCHES)
    pipeline.wait_for_rows(len(pipeline.replay(clicks)))
    pipeline.journey("produce", str(late))
    pipeline.assert_equals_replay(events)
    retracted = pipeline.query(f"SELECT count() AS n FROM {pipeline.database}.transitions WHERE retracted = 1")
    assert int(retracted[0]["n"]) > 0, "no correction happened: the test proves nothing"
    assert_replicas_agree_and_customers_stay_on_one_shard(clickhouse_cluster, pipeline.database)


def test_a_person_s_rows_live_on_the_shard_of_their_customer_id(
        clickhouse_cluster: LocalCluster, tmp_path: Path) -> None:
    """Identity (issue 14, DESIGN.md §1c), as the replay resolves it: anonymous visitors who
    later sign in have their whole journey under their customer id, so the sharding key puts
    a person on one shard — the shard of the customer id, whichever id each event came with.
    (The stream's identity is not built yet; the replay's rows are written as the sink writes.)"""
    from fivea import Rules, replay
    from schemas import EVENT_ADAPTER
    from sinks.clickhouse.backends import BackendURL
    from sinks.clickhouse.placement import Placement
    from sinks.clickhouse.sink import migrate, transition_row
    from sinks.clickhouse.tables import TRANSITION_COLUMNS

    raw = []
    for n in range(60):
        anonymous, customer = f"device-{n}", f"person-{n}"
        day = f"2026-02-{1 + n % 27:02d}"
        raw += [
            {"type": "clickstream", "event_id": f"a{n}", "anonymous_id": anonymous, "occurred_at": f"{day}T08:00:00Z",
             "action": "page_view", "channel": "ad"},
            {"type": "clickstream", "event_id": f"b{n}", "anonymous_id": anonymous, "occurred_at": f"{day}T08:05:00Z",
             "action": "product_view"},
            {"type": "identify", "event_id": f"i{n}", "anonymous_id": anonymous, "customer_id": customer,
             "occurred_at": f"{day}T09:00:00Z"},
            {"type": "purchase", "event_id": f"p{n}", "customer_id": customer, "occurred_at": f"{day}T09:30:00Z",
             "order_id": f"o{n}", "amount": 10.0, "currency": "EUR", "status": "completed"},
        ]
        if n % 3 == 0:  # a visitor who never signs in: a person of their own
            raw.append({"type": "clickstream", "event_id": f"z{n}", "anonymous_id": f"lurker-{n}",
                        "occurred_at": f"{day}T10:00:00Z", "action": "page_view"})
    events = [EVENT_ADAPTER.validate_json(json.dumps({"schema_version": 1, **e})) for e in raw]
    transitions = list(replay(events, Rules.default()))
    persons = {t.customer_id for t in transitions}
    assert {f"person-{n}" for n in range(60)} <= persons and not any(p.startswith("anon:device-") for p in persons)

    database = f"db_i{uuid.uuid4().hex[:10]}"
    url = BackendURL.parse(clickhouse_cluster.url(database))
    placement = Placement(clickhouse_cluster.name)
    migrate(url, placement=placement)
    backend = url.open()
    try:
        backend.insert("transitions", TRANSITION_COLUMNS, [transition_row(t) for t in transitions],
                       placement.insert_settings)
        shard_of = dict(backend.query("SELECT DISTINCT customer_id, sipHash64(customer_id) % 2 + 1 "
                                      "FROM transitions").rows)
    finally:
        backend.close()
    assert set(shard_of) == persons
    assert_replicas_agree_and_customers_stay_on_one_shard(clickhouse_cluster, database)
    for shard in (1, 2):
        held = {row[1] for row in local_rows(clickhouse_cluster.node(shard, 1), database)}
        assert held == {person for person, home in shard_of.items() if int(home) == shard}
        assert len(held) < len(persons)  # both shards hold people


def test_the_query_library_and_the_dashboards_answer_as_on_one_server(
        clickhouse, clickhouse_cluster: LocalCluster, tmp_path: Path) -> None:
    """The same transitions on one 18.16 server and on the cluster: every query-library file
    (its parameter defaults) and every ClickHouse panel of the Grafana dashboards, unchanged,
    gives the same rows; a query only the newer servers run fails on both alike."""
    from fivea import Rules, replay
    from schemas import EVENT_ADAPTER
    from sinks.clickhouse.analytics import library
    from sinks.clickhouse.backends import BackendURL
    from sinks.clickhouse.placement import Placement
    from sinks.clickhouse.sink import migrate, transition_row
    from sinks.clickhouse.tables import TRANSITION_COLUMNS
    from tests.integration.test_grafana_clickhouse_panels import clickhouse_panels, grafana_to_clickhouse

    database = f"db_q{uuid.uuid4().hex[:10]}"
    events = [EVENT_ADAPTER.validate_json(line) for line in write_events(tmp_path / "e.jsonl", 400, seed=331)
              .read_bytes().splitlines()]
    rows = [transition_row(t) for t in replay(events, Rules.default())]
    single = BackendURL.parse(f"clickhouse://default@{clickhouse.address}/{database}")
    cluster = BackendURL.parse(clickhouse_cluster.url(database))
    placement = Placement(clickhouse_cluster.name)
    migrate(single)
    migrate(cluster, placement=placement)
    for url, settings in ((single, {}), (cluster, placement.insert_settings)):
        backend = url.open()
        try:
            for i in range(0, len(rows), 500):  # several parts per shard: partial states to merge
                backend.insert("transitions", TRANSITION_COLUMNS, rows[i:i + 500], settings)
        finally:
            backend.close()

    queries = {f"library {name}": (query.sql(database), query.defaults()) for name, query in library().items()}
    queries.update({f"{board} / {title}": (re.sub(r"\bjourney\.", f"{database}.", grafana_to_clickhouse(sql)), {})
                    for board, title, sql in clickhouse_panels()})
    on_one, on_cluster = _answers(single, queries), _answers(cluster, queries)
    for name in queries:
        assert on_cluster[name] == on_one[name], name
    answered = [name for name, rows in on_one.items() if not (isinstance(rows, tuple) and rows[0] == "refused")]
    assert len([n for n in answered if n.startswith("library")]) >= 5
    assert any(rows for rows in on_one.values() if isinstance(rows, list))


def test_a_replica_stopped_and_restarted_mid_stream_catches_up(
        cluster_pipeline: Pipeline, clickhouse_cluster: LocalCluster, tmp_path: Path) -> None:
    """Shard 2 keeps taking writes on its other replica; the stopped one catches up from it."""
    pipeline = cluster_pipeline
    events = write_events(tmp_path / "events.jsonl", 800, seed=311)
    before, during = halves(events)
    pipeline.journey("produce", str(before))
    pipeline.start_worker(**SMALL_BATCHES)
    pipeline.wait_for_rows(len(pipeline.replay(before)))
    replica = clickhouse_cluster.node(2, 1)
    replica.stop()
    try:
        pipeline.journey("produce", str(during))
        pipeline.wait_for_rows(len(pipeline.replay(events)))  # all of them, shard 2's on its other replica
    finally:
        replica.start()
    pipeline.assert_equals_replay(events)
    assert_replicas_agree_and_customers_stay_on_one_shard(clickhouse_cluster, pipeline.database)


def test_the_server_the_sink_writes_through_goes_down_it_writes_through_another(
        broker, clickhouse_cluster: LocalCluster, tmp_path: Path) -> None:
    """`?alt_hosts=` in the URL: the sink reconnects to the next server that answers; every
    server has the Distributed tables, so the writes go on (shard 1 on its other replica)."""
    entry, alternative, reader = (clickhouse_cluster.node(*at) for at in ((1, 1), (1, 2), (2, 2)))
    pipeline = Pipeline(broker, reader.service, tmp_path)  # the test reads through a node that stays up
    pipeline.settings_env = {
        "JOURNEY_CLICKHOUSE_CLUSTER": clickhouse_cluster.name,
        "JOURNEY_CLICKHOUSE_URL": f"clickhouse://default@{entry.address}/{pipeline.database}"
                                  f"?alt_hosts={alternative.address}",
    }
    try:
        pipeline.setup()
        events = write_events(tmp_path / "events.jsonl", 600, seed=319)
        before, during = halves(events)
        pipeline.journey("produce", str(before))
        _, port = pipeline.start_worker(**SMALL_BATCHES)
        pipeline.wait_for_rows(len(pipeline.replay(before)))
        entry.stop()
        try:
            pipeline.journey("produce", str(during))
            pipeline.wait_for_rows(len(pipeline.replay(events)))  # written while the first server is down
        finally:
            entry.start()
        pipeline.assert_equals_replay(events)
        assert_replicas_agree_and_customers_stay_on_one_shard(clickhouse_cluster, pipeline.database)
    finally:
        pipeline.stop_workers()


def test_a_whole_shard_down_the_sink_retries_commits_nothing_and_loses_nothing(
        cluster_pipeline: Pipeline, clickhouse_cluster: LocalCluster, tmp_path: Path) -> None:
    pipeline = cluster_pipeline
    events = write_events(tmp_path / "events.jsonl", 800, seed=313)
    before, during = halves(events)
    pipeline.journey("produce", str(before))
    worker, port = pipeline.start_worker(**SMALL_BATCHES)
    pipeline.wait_for_rows(len(pipeline.replay(before)))
    shard = clickhouse_cluster.shard(2)
    for node in shard:
        node.stop()
    try:
        pipeline.journey("produce", str(during))
        # The batch in hand is refused (no replica of shard 2 answers) and retried; nothing more
        # is fetched and no offset moves while it waits.
        wait_until(lambda: metric(port, "journey_sink_failures_total") >= 1, 120, "a refused insert")
        committed = sink_offsets(pipeline)
        failures = metric(port, "journey_sink_failures_total")
        wait_until(lambda: metric(port, "journey_sink_failures_total") >= failures + 2, 120, "two more retries")
        assert sink_offsets(pipeline) == committed
        assert metric(port, "journey_sink_clickhouse_up") == 0
        assert worker.poll() is None
    finally:
        for node in shard:
            node.start()
    pipeline.assert_equals_replay(events)
    log = (tmp_path / f"worker-{pipeline.started}.log").read_text()
    assert "refused the insert" in log and "retrying" in log
    assert_replicas_agree_and_customers_stay_on_one_shard(clickhouse_cluster, pipeline.database)


def test_zookeeper_stopped_for_a_while_tables_read_only_the_sink_waits(
        cluster_pipeline: Pipeline, clickhouse_cluster: LocalCluster, tmp_path: Path) -> None:
    pipeline = cluster_pipeline
    events = write_events(tmp_path / "events.jsonl", 800, seed=317)
    before, during = halves(events)
    pipeline.journey("produce", str(before))
    worker, port = pipeline.start_worker(**SMALL_BATCHES)
    pipeline.wait_for_rows(len(pipeline.replay(before)))
    try:
        clickhouse_cluster.zookeeper.stop()
        try:
            pipeline.journey("produce", str(during))
            wait_until(lambda: metric(port, "journey_sink_failures_total") >= 2, 120, "inserts refused")
            assert worker.poll() is None
        finally:
            clickhouse_cluster.start_zookeeper()
        pipeline.assert_equals_replay(events)
        log = (tmp_path / f"worker-{pipeline.started}.log").read_text()
        assert "readonly mode" in log and "retrying" in log
        assert_replicas_agree_and_customers_stay_on_one_shard(clickhouse_cluster, pipeline.database)
    finally:
        # Replicated DDL can stay stuck after a ZooKeeper outage until the servers restart (DESIGN.md §5).
        pipeline.stop_workers()
        clickhouse_cluster.restart_servers()



def test_migrate_refuses_to_mix_a_single_server_s_tables_with_the_cluster_s(
        broker, clickhouse_cluster: LocalCluster, tmp_path: Path) -> None:
    """A database migrated for one server is not converted in place (nor the reverse): the
    command says so and what to do, and the worker's sink refuses the mismatch too."""
    pipeline = Pipeline(broker, clickhouse_cluster.entry.service, tmp_path)
    pipeline.journey("migrate")  # single-server tables on the first node
    refused = pipeline.journey("migrate", "--cluster", clickhouse_cluster.name, check=False)
    assert refused.returncode != 0
    assert "never converts a table in place" in refused.stderr.decode()
    engines = dict(node_query(clickhouse_cluster.node(2, 1),
                              f"SELECT name, engine FROM system.tables WHERE database = '{pipeline.database}'"))
    assert not engines, "nothing was created on the other servers"
    printed = pipeline.journey("migrate", "--print").stdout.decode()  # the single-server run still works
    assert "ON CLUSTER" not in printed and "ENGINE = ReplacingMergeTree" in printed
    pipeline.journey("topics")
    worker = pipeline.spawn_worker(0, JOURNEY_CLICKHOUSE_CLUSTER=clickhouse_cluster.name)
    assert worker.wait(timeout=120) != 0
    log = (tmp_path / f"worker-{pipeline.started}.log").read_text()
    assert "is a single-server table but JOURNEY_CLICKHOUSE_CLUSTER is journey" in log, log[-2000:]


def test_the_cluster_ddl_for_current_clickhouse_parses_on_its_engine(tmp_path: Path) -> None:
    """No current-version cluster runs here; chDB embeds the current engine, whose parser
    (`formatQuery`) accepts every statement rendered for a cluster with the modern types."""
    chdb_session = pytest.importorskip("chdb.session")
    from sinks.clickhouse.placement import Placement
    from sinks.clickhouse.tables import Dialect, migrations

    session = chdb_session.Session(str(tmp_path / "chdb"))
    try:
        version = session.query("SELECT version()", "CSV").data().strip().strip('"')
        dialect = Dialect(tuple(int(x) for x in version.split(".")[:2]))  # type: ignore[arg-type]
        assert dialect.modern
        from sinks.clickhouse.analytics import rebuild_customer_state

        statements = [*Placement("journey").render(rebuild_customer_state("journey", dialect)),
                      *migrations("journey", dialect, Placement("journey"))]
        assert any("LowCardinality" in s and "Replicated" in s for s in statements)
        for statement in statements:
            escaped = statement.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")  # parameter text
            formatted = session.query("SELECT formatQuery({sql:String})", "TSVRaw", params={"sql": escaped}).data()
            assert formatted.strip(), statement
            if statement.startswith(("CREATE", "DROP")):
                assert "ON CLUSTER journey" in formatted, formatted
    finally:
        session.close()


def test_a_customer_state_from_before_the_first_touch_is_rebuilt_on_the_cluster(
        cluster_pipeline: Pipeline, clickhouse_cluster: LocalCluster) -> None:
    """Issue 16 added the first touch to customer_state: `journey migrate` on a cluster whose
    rollup predates it drops it (its Distributed table and replicated shards, its materialized
    view and the view over it) ON CLUSTER, creates it anew and backfills it from transitions."""
    from fivea import Rules, replay
    from journey.generate import generate, to_jsonl
    from schemas import parse_event
    from sinks.clickhouse.placement import INSERT_SETTINGS, Placement
    from sinks.clickhouse.sink import transition_row
    from sinks.clickhouse.tables import TRANSITION_COLUMNS
    from tests.integration.test_analytics import customer_state_before_first_touch

    pipeline, database = cluster_pipeline, cluster_pipeline.database
    url = pipeline_url(pipeline)
    transitions = list(replay([parse_event(to_jsonl(e)) for e in generate(400, seed=353)], Rules.default()))
    backend = url.open()
    try:
        for statement in Placement(clickhouse_cluster.name).render(
                customer_state_before_first_touch(database, backend.dialect)):
            backend.execute(statement)
        backend.insert("transitions", TRANSITION_COLUMNS, [transition_row(t) for t in transitions], INSERT_SETTINGS)
    finally:
        backend.close()
    for node in clickhouse_cluster.nodes:
        columns = {name for (name,) in node_query(
            node, f"SELECT name FROM system.columns WHERE database = '{database}' AND table = 'customer_state_local'")}
        assert "aware_seq" in columns and "aware_channel" not in columns

    migrated = pipeline.journey("migrate", "--print").stdout.decode()
    assert f"DROP TABLE IF EXISTS {database}.customer_state_local ON CLUSTER {clickhouse_cluster.name}" in migrated
    for node in clickhouse_cluster.nodes:
        engines = dict(node_query(node, f"SELECT name, engine FROM system.tables WHERE database = '{database}'"))
        assert (engines["customer_state"], engines["customer_state_local"]) == (
            "Distributed", "ReplicatedAggregatingMergeTree")
        columns = {name for (name,) in node_query(
            node, f"SELECT name FROM system.columns WHERE database = '{database}' AND table = 'customer_state_local'")}
        assert "aware_channel" in columns
    assert_report(journey_report(url), expected_sections(transitions, "default", *ALL_TIME))
    assert "DROP TABLE" not in pipeline.journey("migrate", "--print").stdout.decode()  # rebuilt once
