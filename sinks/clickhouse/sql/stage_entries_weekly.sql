-- title: Stage entries per week
-- Customers entering each stage per ISO week (weeks start on Monday, UTC), one column per
-- stage, for a brand and period. The first and last weeks are cut at since and until.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.stage_entries_daily (rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    week,
    sumIf(n, stage = 'aware') AS aware,
    sumIf(n, stage = 'appeal') AS appeal,
    sumIf(n, stage = 'ask') AS ask,
    sumIf(n, stage = 'act') AS act,
    sumIf(n, stage = 'advocate') AS advocate
FROM
(
    SELECT toMonday(day) AS week, stage, uniqExactMerge(entries) - uniqExactMerge(retractions) AS n
    FROM journey.stage_entries_daily
    WHERE brand = {brand:String}
      AND day >= {since:Date} AND day < {until:Date}
    GROUP BY week, stage
)
GROUP BY week
ORDER BY week
