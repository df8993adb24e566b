"""`journey report --format html` in a real browser: Debian's headless Chromium opens the page with
every network name unresolvable (so it must work offline), runs its scripts, and the test reads the
DOM it leaves: no script error, every chart drawn, the figures the charts were given equal to
`journey report --format json`. A screenshot of the page is saved beside the test's files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fivea import Rules, replay
from journey.generate import generate, to_jsonl
from reports.html import CHARTS
from schemas import parse_event
from sinks.clickhouse.backends import BackendURL
from sinks.clickhouse.sink import migrate, transition_row
from sinks.clickhouse.tables import TRANSITION_COLUMNS

pytestmark = pytest.mark.integration


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is missing: run `bash scripts/setup.sh test` (Debian package chromium)"
    return found


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Open `page` in headless Chromium, offline, and let its scripts run to completion."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--no-default-browser-check", "--hide-scrollbars", f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: a CDN or any fetch would fail
        "--enable-logging=stderr", "--v=0",  # console messages (and uncaught errors) on stderr
        "--virtual-time-budget=10000",  # run timers and animation frames until the page is idle
        *args, page.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, timeout=180)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return result


class Elements(HTMLParser):
    """The attributes of <body>, of every element with an id and of the embedded JSON."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.data_text: list[str] = []
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "body" and not self.body:
            self.body = attributes
        if attributes.get("id"):
            self.by_id[str(attributes["id"])] = attributes
        self._in_data = attributes.get("id") == "report-data"

    def handle_endtag(self, tag: str) -> None:
        self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_text.append(data)


def journey(*args: str, url: BackendURL) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    env["JOURNEY_CLICKHOUSE_URL"] = str(url)
    result = subprocess.run([sys.executable, "-m", "journey.cli", *args], env=env, capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return result


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> BackendURL:
    """A chDB database holding the replayed transitions of 3,000 generated customers."""
    url = BackendURL.parse(f"chdb://{tmp_path_factory.mktemp('html') / 'chdb'}?database=journey")
    migrate(url)
    events = [parse_event(to_jsonl(e)) for e in generate(3_000, seed=23)]
    backend = url.open()
    try:
        backend.insert("transitions", TRANSITION_COLUMNS, [transition_row(t) for t in replay(events, Rules.default())])
    finally:
        backend.close()
    return url


def test_the_html_report_draws_every_chart_offline_from_the_json_reports_figures(url: BackendURL,
                                                                                 tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    written = journey("report", "--format", "html", "-o", str(page), url=url)
    assert written.stdout == b"" and f"wrote {page.resolve()}" in written.stderr.decode()
    report = json.loads(journey("report", "--format", "json", url=url).stdout)
    assert report["no_data"] is None and report["sections"]["flows"]

    shown = browse(page, tmp_path / "profile", "--dump-dom")
    console = [line for line in shown.stderr.decode().splitlines() if ":CONSOLE" in line]
    assert console == []  # no script error, no warning
    dom = Elements()
    dom.feed(shown.stdout.decode())
    assert dom.body.get("data-ready") == "true", "the chart script did not finish"
    assert dom.body.get("data-errors") == ""
    for name, *_ in CHARTS:
        drawn = dom.by_id[f"chart-{name}"].get("data-drawn") or ""
        assert re.fullmatch(r"\d+", drawn) and int(drawn) >= 10, (name, drawn)  # axes, marks and labels in SVG
    assert json.loads("".join(dom.data_text)) == report  # the charts' figures are the JSON report's

    screenshot = tmp_path / "report.png"
    browse(page, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1280,2700")
    width, height = png_size(screenshot)
    assert (width, height) == (1280, 2700) and screenshot.stat().st_size > 100_000  # a page of charts, not blank
    print(f"screenshot: {screenshot}")


def test_an_html_report_without_data_opens_and_says_so(url: BackendURL, tmp_path: Path) -> None:
    page = tmp_path / "nobody.html"
    journey("report", "--brand", "nobody", "--format", "html", "-o", str(page), url=url)
    dom = Elements()
    shown = browse(page, tmp_path / "profile", "--dump-dom")
    dom.feed(shown.stdout.decode())
    assert dom.body.get("data-ready") == "true" and dom.body.get("data-errors") == ""
    assert "No data.</strong> no data for brand nobody" in shown.stdout.decode()
    assert not any(key.startswith("chart-") for key in dom.by_id)


def test_a_terminal_gets_no_html_without_a_file(url: BackendURL) -> None:
    """--format html on a terminal asks for -o (the page is ~1 MB); piped, it is written to stdout."""
    piped = journey("report", "--format", "html", url=url)
    assert piped.stdout.startswith(b"<!DOCTYPE html>")
    script = "import pty, sys; sys.exit(pty.spawn([sys.executable, '-m', 'journey.cli', 'report', '--format', 'html']) >> 8)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    env["JOURNEY_CLICKHOUSE_URL"] = str(url)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert result.returncode == 2
    assert b"--format html writes a web page: add -o FILE" in result.stdout
