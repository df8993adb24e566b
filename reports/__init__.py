"""The analysts' layer above the query library: rendering a report for people.

`reports.html` turns the report's JSON document (`journey report --format json`) into one
self-contained HTML page with charts (Apache ECharts, vendored in `reports/assets/`);
`reports.formatting` holds the number and duration formats every rendering shares. Nothing here
queries a database or parses arguments: collecting is `journey.report`, wiring is the CLI.
"""
