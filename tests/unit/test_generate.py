"""The simulator: deterministic, shaped like its preset, with referrals, campaigns and bad records."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from functools import cache

import orjson
import pytest

from fivea import Rules, replay
from fivea.ratios import PathMetrics
from journey.cli import main
from journey.generate import (
    DEFECTS,
    OUTER,
    PRESETS,
    Line,
    Pacer,
    PathProfile,
    Progress,
    Simulation,
    generate,
    generate_lines,
    to_jsonl,
)
from schemas import parse_event
from schemas.rejections import Rejection, decode

RULES = Rules.default()
SHAPES = {"funnel": "funnel", "door-knob": "door knob", "goldfish": "goldfish", "trumpet": "trumpet"}


@cache
def metrics(preset: str, seed: int) -> PathMetrics:
    events = [parse_event(to_jsonl(e)) for e in generate(2000, seed=seed, profile=PRESETS[preset])]
    return PathMetrics.from_counts(Counter(t.to_stage for t in replay(events, RULES)))


@cache
def funnel_events() -> list[dict]:
    return list(generate(2000, seed=1))


# --- determinism -----------------------------------------------------------------------------


def joined(customers: int, **options) -> bytes:
    return b"".join(line.raw for line in generate_lines(customers, **options))


def test_same_seed_same_bytes_other_seed_other_bytes():
    first = joined(300, seed=7, malformed=0.05)
    assert first == joined(300, seed=7, malformed=0.05)
    assert first != joined(300, seed=8, malformed=0.05)
    assert len(first) > 10_000


def test_generate_yields_the_valid_lines_as_dicts():
    events = list(generate(200, seed=4))
    assert [to_jsonl(e) for e in events] == [line.raw for line in generate_lines(200, seed=4)]
    assert [to_jsonl(e) for e in events] == [line.raw for line in generate_lines(200, seed=4, malformed=0.2)
                                              if line.defect is None]


def test_pipeline_dataset_stays_big_enough():
    """tests/conftest.py's `dataset` promises >= 10,000 events over >= 1,000 customers."""
    events = list(generate(2500, seed=3))
    assert len(events) >= 10_000 and len({e["customer_id"] for e in events}) >= 1_000


# --- shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_replayed_shows_its_shape(preset, seed):
    assert metrics(preset, seed).shape == SHAPES[preset], metrics(preset, seed)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_simulated_rates_follow_the_profile(preset):
    m, expected = metrics(preset, 1), PRESETS[preset].expected_rates()
    for stage, rate in expected.items():
        assert getattr(m, stage) / m.aware == pytest.approx(rate, abs=0.035), stage


def test_expected_rates_give_the_preset_shapes_too():
    for preset, profile in PRESETS.items():
        assert PathMetrics.from_counts({k: round(v * 10_000) for k, v in profile.expected_rates().items()}).shape \
            == SHAPES[preset]


def test_profile_rejects_impossible_values():
    with pytest.raises(ValueError, match="appeal"):
        PathProfile(appeal=1.5)
    with pytest.raises(ValueError, match="exclusive"):
        PathProfile(impulse_buy=0.6, ask_without_appeal=0.6)
    with pytest.raises(ValueError, match="without bound"):
        replace(PRESETS["trumpet"], referrals_per_share=8)
    with pytest.raises(ValueError, match="malformed"):
        Simulation(10, malformed=1.0)


# --- population realism ----------------------------------------------------------------------


def test_referred_customers_arrive_through_peers_and_land_in_the_other_zone():
    events = funnel_events()
    first: dict[str, dict] = {}
    for e in events:
        first.setdefault(e["customer_id"], e)
    referred = {c: e for c, e in first.items() if e.get("referrer_id")}
    assert len(referred) >= 50
    shared_at = {}
    for e in events:
        if e["type"] == "share" and (e["kind"] != "review" or e["rating"] >= 4):
            shared_at.setdefault(e["customer_id"], e["occurred_at"])
    for customer, e in referred.items():
        assert e["channel"] in ("referral", "social")
        assert shared_at[e["referrer_id"]] <= e["occurred_at"]  # brought by an advocate's earlier share
    aware = {t.customer_id: t for t in replay([parse_event(to_jsonl(e)) for e in events], RULES)
             if t.to_stage == "aware"}
    for customer, e in referred.items():
        assert aware[customer].influence == "other" and aware[customer].referrer_id == e["referrer_id"]
    assert Counter(t.influence for t in aware.values()).keys() == {"own", "outer", "other"}


def test_campaigns_only_on_outer_channels_and_a_real_channel_mix():
    events = funnel_events()
    with_campaign = [e for e in events if "campaign" in e]
    assert len(with_campaign) > len(events) / 20
    assert {e["channel"] for e in with_campaign} <= OUTER <= set(RULES.outer_channels)
    channels = Counter(e["channel"] for e in events if "referrer_id" not in e)
    assert len(channels) >= 10 and channels.most_common(1)[0][1] < len(events) / 2


def test_events_are_in_time_order_within_the_span():
    events = funnel_events()
    times = [datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) for e in events]
    assert times == sorted(times)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert start <= times[0] and times[-1] <= start + timedelta(days=30)
    assert len({e["event_id"] for e in events}) == len(events)


def test_brand_start_and_days_are_honoured():
    start = datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
    events = list(generate(50, seed=2, brand="acme", start=start, days=2))
    assert events and {e["brand"] for e in events} == {"acme"}
    assert all(start.isoformat()[:10] <= e["occurred_at"][:10] <= "2025-06-03" for e in events)


# --- malformed records -----------------------------------------------------------------------


def test_malformed_fraction_is_honoured_and_every_bad_line_is_rejected():
    lines = list(generate_lines(1500, seed=9, malformed=0.1))
    bad = [line for line in lines if line.defect]
    assert len(bad) / len(lines) == pytest.approx(0.1, abs=0.02)
    assert {line.defect for line in bad} == set(DEFECTS)
    codes = Counter()
    for line in lines:
        assert line.raw.endswith(b"\n") and line.raw.count(b"\n") == 1
        result = decode(line.raw.rstrip(b"\n"), 65536)
        if line.defect:
            assert isinstance(result, Rejection), line
            codes[result.code] += 1
        else:
            assert not isinstance(result, Rejection), (line, result)
    assert {"invalid_json", "invalid_fields", "naive_timestamp", "unknown_type"} <= set(codes)


def test_no_malformed_lines_by_default():
    assert not any(line.defect for line in generate_lines(300, seed=1))


# --- pacing and progress ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now, self.sleeps = 100.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("rate", [100, 10_000])
def test_pacer_holds_the_rate_in_a_few_sleeps(rate):
    clock = FakeClock()
    flushed = []
    pacer = Pacer(rate, clock=clock, sleep=clock.sleep, before_sleep=lambda: flushed.append(1))
    for _ in range(rate * 2):
        pacer.take()
    assert clock.now - 100 == pytest.approx(2.0, abs=0.02)
    assert len(clock.sleeps) <= rate * 2 and min(clock.sleeps) >= 1 / rate * 0.5
    assert len(flushed) == len(clock.sleeps)
    if rate >= 10_000:
        assert len(clock.sleeps) < rate * 2 / 20  # chunked, not one sleep per event


def test_unpaced_never_sleeps():
    clock = FakeClock()
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        pacer.take()
    assert clock.sleeps == []
    with pytest.raises(ValueError):
        Pacer(0)


def test_progress_reports_every_interval():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(out, clock=clock)
    for second in range(1, 4):
        for i in range(1000):
            progress.add(Line(b"{}\n", "truncated_json" if i % 10 == 0 else None))
        clock.now += 1.0
    progress.add(Line(b"{}\n"))  # reports at most once a second
    progress.add(Line(b"{}\n"))
    progress.done("summary")
    assert out.getvalue().splitlines() == ["generated 1,001 events (1,001/s)", "generated 2,001 events (1,000/s)",
                                           "generated 3,001 events (1,000/s)", "summary"]
    assert progress.malformed == 300 and progress.lines == 3002


def test_progress_is_silent_without_a_stream():
    progress = Progress(None)
    progress.add(Line(b"{}\n"))
    progress.done("summary")
    assert progress.lines == 1


# --- the command -----------------------------------------------------------------------------


def test_cli_writes_the_same_bytes_as_the_library(tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    argv = ["generate", "--customers", "80", "--seed", "2", "--preset", "goldfish", "--p-act", "0.5",
            "--malformed", "0.1", "--brand", "acme", "-o", str(path)]
    assert main(argv) == 0
    profile = replace(PRESETS["goldfish"], act=0.5)
    assert path.read_bytes() == joined(80, seed=2, profile=profile, malformed=0.1, brand="acme")
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("generated ") and "malformed" in summary and "goldfish" in summary


def test_cli_writes_stdout_by_default(capsysbinary):
    assert main(["generate", "--customers", "20", "--seed", "3", "--quiet"]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == joined(20, seed=3) and captured.err == b""


@pytest.mark.parametrize("flags, message", [
    (["--p-appeal", "2"], "appeal must be a probability"),
    (["--malformed", "1"], "malformed must be a fraction"),
    (["--rate", "0"], "rate must be > 0"),
])
def test_cli_refuses_bad_values(flags, message, capsys):
    assert main(["generate", "--customers", "5", *flags]) == 2
    assert message in capsys.readouterr().err


def test_events_are_valid_json_objects():
    for line in generate_lines(30, seed=5):
        assert isinstance(orjson.loads(line.raw), dict)


def test_a_lag_delivers_one_type_behind_the_others_and_keeps_every_line():
    from journey.generate import Simulation, lagged

    lines = list(Simulation(300, seed=3).lines())
    delivered = list(lagged(lines, {"purchase": 0.5}, rate=100))  # 50 lines behind
    assert sorted(delivered) == sorted(lines)
    position = {line: i for i, line in enumerate(delivered)}
    for i, line in enumerate(lines):
        if line.type == "purchase":  # behind the 49 lines after it (or at the end)
            later = [other for other in lines[i + 1:i + 50] if other.type != "purchase"]
            assert all(position[other] < position[line] for other in later)
        else:
            assert position[line] <= i  # others only move up
    assert list(lagged(lines, {}, rate=100)) == lines


def test_buyers_who_browse_after_buying_make_the_stream_correct():
    """Delivered with purchases behind, browsing after a purchase gives corrections; the replay is unchanged."""
    from dataclasses import replace

    from fivea import Rules, advance, customer_key, replay
    from journey.generate import PRESETS, Simulation, lagged
    from schemas import parse_event

    sim = Simulation(400, seed=4, profile=replace(PRESETS["funnel"], browse_after_purchase=0.8))
    lines = list(sim.lines())
    events = [parse_event(line.raw) for line in lines]
    browsing = [e for e in events if e.type == "clickstream" and e.session_id is None]
    assert browsing  # the post-purchase clicks (no session, after a completed purchase)
    states, corrected = {}, 0
    for line in lagged(lines, {"purchase": 5}, rate=100):
        event = parse_event(line.raw)
        step = advance(states.get(customer_key(event)), event, Rules.default())
        states[customer_key(event)] = step.state
        corrected += step.corrected
    assert corrected > 0
    without = [e for e in events if e not in browsing]
    key = lambda t: (t.customer_id, t.seq)  # noqa: E731
    assert sorted(replay(events, Rules.default()), key=key) == sorted(replay(without, Rules.default()), key=key)
