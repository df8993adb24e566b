-- title: Customers entering each stage
-- Kotler's N_aware ... N_advocate for one brand and period: how many customers entered each
-- stage of the 5A path on a day in [since, until) (UTC days of the transition's occurred_at).
-- A customer has at most one live entry per stage, so each is counted once per stage they
-- entered: live rows only (entries minus retractions, DESIGN.md §1b). Stages nobody entered are
-- absent (read them as 0). Skipped stages are not entered: an impulse buyer (aware -> act)
-- counts in aware and act only.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.stage_entries_daily (rollup; never scans transitions)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    stage,
    uniqExactMerge(entries) - uniqExactMerge(retractions) AS customers
FROM journey.stage_entries_daily
WHERE brand = {brand:String}
  AND day >= {since:Date} AND day < {until:Date}
GROUP BY stage
HAVING customers > 0
ORDER BY stage
