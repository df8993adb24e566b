"""`journey report --format html`: one self-contained page with charts, from the report's JSON document.

The page inlines everything it needs — styles, Apache ECharts (`assets/echarts.min.js`, the
version in `assets/README.md`) and the charts' script (`assets/report.js`) — so it opens offline
and can be mailed or archived as one file. The JSON document (`journey report --format json`,
byte for byte the same data) sits in a `<script type="application/json" id="report-data">`
element; the charts read their figures from it and nowhere else, and every section is also
printed as a table (the text report's figures, formatted the same way) for reading, copying and
printing.

Contract for tests and tools: each chart is a `<div class="chart" id="chart-NAME">`; after the
script has run, `<body data-ready="true">` is set, each drawn chart has `data-drawn` (the number
of SVG elements it drew), and `<body data-errors>` lists any script error (empty when none).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from reports.formatting import LABELS, cell, note

ASSETS = Path(__file__).resolve().with_name("assets")

#: The charts, in page order: element id suffix, heading, what it shows, the sections it reads.
CHARTS = (
    ("path", "The 5A path", "Customers entering each stage in the period, with the conversion between "
     "neighbouring stages (attraction, curiosity, commitment, affinity).", ("stage_entries", "ratios")),
    ("window", "Conversion within {window} days", "Funnel conversion (as PostHog and Mixpanel define it): of the "
     "persons first seen in the period, the share that entered each stage within {window} days of their first "
     "contact (line); beside it, the period counts: customers entering each stage in the period, whenever first "
     "seen (bars).", ("conversion_window",)),
    ("flows", "How people move", "Every move between stages in the period, skips included (orange): "
     "a link's width is the number of customers who made that move; \"new\" is a first contact.", ("flows",)),
    ("weekly", "Stage entries per week", "Customers entering each stage per week (weeks from Monday, UTC); "
     "a week marked * is partial: the period or the data covers fewer than 7 of its days.",
     ("stage_entries_weekly",)),
    ("influence", "What moved them", "Customers entering each stage by the influence zone of the event "
     "that moved them: own initiative, other people (peers), outer (marketing).", ("influence_mix",)),
    ("channels", "Channels per stage", "Customers entering each stage by the channel of the event that "
     "moved them ((none): the event had no channel).", ("channel_mix",)),
    ("first-channel", "By acquisition channel (first touch)", "PAR and BAR per channel of each person's first "
     "contact (bars), and the customers first seen in the period through it (line); every entry of the period "
     "counts under its person's first touch.", ("first_touch_channel",)),
    ("first-influence", "By influence zone of the first contact", "PAR and BAR per O-zone of each person's first "
     "contact: own initiative, other people (peers), outer (marketing); line: customers first seen through it.",
     ("first_touch_influence",)),
    ("first-campaign", "By campaign of the first contact", "PAR and BAR per campaign of each person's first "
     "contact ((none): no campaign); line: customers first seen through it.", ("first_touch_campaign",)),
    ("cohorts", "Weekly cohorts", "Customers by the week they were first seen (rows) and the share of "
     "them that has entered each later stage since; * marks a partial week.", ("cohorts_weekly",)),
    ("convert", "Time to convert", "How long customers took: aware -> act for customers who bought in "
     "the period, act -> advocate for those who advocated in it (quartiles and p90).", ("time_to_convert",)),
    ("referrals", "Referral reach", "New customers brought by each advocate's shares (top advocates).",
     ("referral_reach", "top_advocates")),
)

#: Section headings of the figures tables.
TITLES = {
    "stage_entries": "Customers entering each stage",
    "ratios": "Ratios",
    "path_shape": "Path shape",
    "flows": "Moves between stages",
    "stage_entries_weekly": "Stage entries per week",
    "influence_mix": "Influence zone per stage",
    "channel_mix": "Channels per stage (triggering channel)",
    "conversion_window": "Conversion within the window beside the period counts",
    "first_touch_channel": "By acquisition channel (first touch)",
    "first_touch_influence": "By influence zone of the first contact",
    "first_touch_campaign": "By campaign of the first contact",
    "time_to_convert": "Time to convert",
    "referral_reach": "Referral reach",
    "top_advocates": "Top advocates",
    "cohorts_weekly": "Weekly cohorts",
    "current_stage": "Where customers first seen in the period are now",
}

STYLE = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --card: #ffffff; --page: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: var(--page); }
header { padding: 20px 28px 8px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 2px; }
.meta { color: var(--muted); margin: 2px 0; }
.banner { margin: 12px 28px; padding: 14px 18px; border-radius: 8px; background: #fff3c4; border: 1px solid #f0b429; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; padding: 8px 28px 4px; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.kpi .value { font-size: 22px; font-weight: 600; }
.kpi .label { color: var(--muted); font-size: 12px; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; padding: 12px 28px 28px; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
section.card p.what { color: var(--muted); margin: 0 0 8px; font-size: 13px; }
.chart { width: 100%; height: 340px; }
details { margin-top: 8px; }
summary { cursor: pointer; color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { padding: 2px 10px 2px 0; text-align: right; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 500; }
th:first-child, td:first-child, td.text { text-align: left; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 24px; }
@media print { .chart { break-inside: avoid; } details { display: block; } }
"""

# Runs before anything else: a script error anywhere is recorded on <body> for the browser test.
CATCH_ERRORS = """
window.__reportErrors = [];
window.addEventListener("error", function (e) {
  window.__reportErrors.push(String(e.message || e));
  if (document.body) document.body.setAttribute("data-errors", window.__reportErrors.join(" | "));
});
"""


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _script(code: str) -> str:
    # "</script" would end the element early; a JS or JSON string may write it as "<\/script".
    return "<script>" + code.replace("</script", "<\\/script") + "</script>"


def embedded_json(doc: dict[str, Any]) -> str:
    """The document as the page embeds it (`</` escaped as `<\\/`, which JSON reads as `</`)."""
    return orjson.dumps(doc).decode().replace("</", "<\\/")


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c.removesuffix('_ms'))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column, value in zip(columns, row):
            text_cell = isinstance(value, str) and not column.endswith("_at")
            cells.append(f"<td{' class=text' if text_cell else ''}>{html.escape(cell(column, value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def section_table(key: str, section: Any, window_days: int = 30) -> str:
    """A section's figures as the text report shows them: a record as label/value lines, else a grid."""
    title = f"<h3 class=meta>{html.escape(TITLES.get(key, key))}</h3>"
    if (text := note(key, window_days)) and not (isinstance(section, dict) and "unavailable" in section):
        title += f"<p class=meta>{html.escape(text)}</p>"
    if isinstance(section, dict) and "unavailable" in section:
        return title + f"<p class=meta>{html.escape(section['unavailable'])}</p>"
    if isinstance(section, dict):
        rows = [(LABELS.get(name, name), cell(name, value)) for name, value in section.items()]
        return title + _table(("figure", "value"), rows)
    if not section:
        return title + "<p class=meta>(none in this period)</p>"
    return title + _table(tuple(section[0]), [tuple(row.values()) for row in section])


def _kpis(doc: dict[str, Any]) -> str:
    sections = doc["sections"]
    aware = next((row["customers"] for row in sections["stage_entries"] if row["stage"] == "aware"), 0)
    ratios, shape = sections["ratios"], sections["path_shape"]
    reach = sections.get("referral_reach") or {}
    figures = [
        (f"{aware:,}", "customers aware"),
        (cell("par", ratios.get("par")), LABELS["par"]),
        (cell("bar", ratios.get("bar")), LABELS["bar"]),
        (shape.get("shape") or "n/a", f"path shape (bow tie distance {cell('d', shape.get('bow_tie_distance'))})"),
        (cell("viral_coefficient", reach.get("viral_coefficient")), LABELS["viral_coefficient"]),
    ]
    cards = "".join(f"<div class=kpi><div class=value>{html.escape(v)}</div><div class=label>{html.escape(k)}</div>"
                    "</div>" for v, k in figures)
    return f"<div class=kpis>{cards}</div>"


def _period(doc: dict[str, Any]) -> str:
    if doc["since"] is None and doc["until"] is None:
        return "all data"
    return f"{doc['since'] or 'the start'} to {doc['until'] or 'the end'} (UTC days, until exclusive)"


def render_html(doc: dict[str, Any]) -> str:
    """The page for one report document (the dict `journey report --format json` prints)."""
    brand = html.escape(doc["brand"])
    span = ("no transitions" if doc["first_event"] is None
            else f"first transition {doc['first_event']}, last {doc['last_event']} (event time, UTC)")
    parts = [
        "<!DOCTYPE html>", "<html lang=en>", "<head>", "<meta charset=utf-8>",
        "<meta name=viewport content='width=device-width, initial-scale=1'>",
        f"<title>5A report: {brand}, {html.escape(_period(doc))}</title>",
        f"<style>{STYLE}</style>", _script(CATCH_ERRORS), "</head>", "<body data-errors=''>",
        "<header>", f"<h1>5A customer journey: brand {brand}</h1>",
        f"<p class=meta>Period: {html.escape(_period(doc))} · data: {html.escape(span)} · "
        f"ClickHouse {html.escape(doc['server'])}</p>", "</header>",
    ]
    if doc.get("no_data"):
        parts.append(f"<div class=banner role=status><strong>No data.</strong> {html.escape(doc['no_data'])}</div>")
    else:
        parts.append(_kpis(doc))
    parts.append("<main>")
    shown = set()
    window = doc.get("window_days", 30)
    for name, heading, what, keys in CHARTS:
        heading, what = heading.format(window=window), what.format(window=window)
        chart = "" if doc.get("no_data") else f"<div class=chart id='chart-{name}' role=img aria-label='{html.escape(heading)}'></div>"
        tables = "".join(section_table(key, doc["sections"][key], window) for key in keys)
        shown.update(keys)
        parts.append(f"<section class=card><h2>{html.escape(heading)}</h2><p class=what>{html.escape(what)}</p>"
                     f"{chart}<details{' open' if doc.get('no_data') else ''}><summary>figures</summary>{tables}"
                     "</details></section>")
    rest = [key for key in doc["sections"] if key not in shown]
    parts.append("<section class=card><h2>More figures</h2><p class=what>The path shape and where the "
                 "customers first seen in the period are now.</p>" + "".join(section_table(k, doc["sections"][k]) for k in rest) + "</section>")
    parts.append("</main>")
    parts.append("<footer>journey5a · definitions of every figure: docs/analysts.md · charts: Apache ECharts "
                 "(Apache-2.0), inlined · the data of this page: the JSON in #report-data</footer>")
    parts.append(f"<script type='application/json' id=report-data>{embedded_json(doc)}</script>")
    if not doc.get("no_data"):
        parts.append(_script(_asset("echarts.min.js")))
    parts.append(_script(_asset("report.js")))
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
