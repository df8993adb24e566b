-- title: Stage entries per day
-- Customers entering each stage per UTC day, one column per stage: a time series for
-- dashboards (Grafana: format as time series, `day` as the time column). Days with no entries
-- are absent.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.stage_entries_daily (rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    day,
    sumIf(n, stage = 'aware') AS aware,
    sumIf(n, stage = 'appeal') AS appeal,
    sumIf(n, stage = 'ask') AS ask,
    sumIf(n, stage = 'act') AS act,
    sumIf(n, stage = 'advocate') AS advocate
FROM
(
    SELECT day, stage, uniqExactMerge(entries) - uniqExactMerge(retractions) AS n
    FROM journey.stage_entries_daily
    WHERE brand = {brand:String}
      AND day >= {since:Date} AND day < {until:Date}
    GROUP BY day, stage
)
GROUP BY day
ORDER BY day
