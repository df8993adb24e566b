-- title: Stage entries per day
-- Customers entering each stage per UTC day, one column per stage: a time series for
-- dashboards (Grafana: format as time series, `day` as the time column). Every day from the
-- first to the last day with entries in the period has a row: a day without entries is a row of
-- zeros, not a gap (no rows at all when the period has no entries).
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.stage_entries_daily (rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    first_day + offset AS day,
    arraySum(arrayMap((d, s, n) -> if(d = day AND s = 'aware', n, 0), days, stages, counts)) AS aware,
    arraySum(arrayMap((d, s, n) -> if(d = day AND s = 'appeal', n, 0), days, stages, counts)) AS appeal,
    arraySum(arrayMap((d, s, n) -> if(d = day AND s = 'ask', n, 0), days, stages, counts)) AS ask,
    arraySum(arrayMap((d, s, n) -> if(d = day AND s = 'act', n, 0), days, stages, counts)) AS act,
    arraySum(arrayMap((d, s, n) -> if(d = day AND s = 'advocate', n, 0), days, stages, counts)) AS advocate
FROM
(
    SELECT
        groupArray(entry_day) AS days,
        groupArray(toString(stage)) AS stages,
        groupArray(n) AS counts,
        min(entry_day) AS first_day,
        if(count() = 0, 0, toUInt32(max(entry_day) - min(entry_day)) + 1) AS span
    FROM
    (
        SELECT day AS entry_day, stage, uniqExactMerge(entries) - uniqExactMerge(retractions) AS n
        FROM journey.stage_entries_daily
        WHERE brand = {brand:String}
          AND day >= {since:Date} AND day < {until:Date}
        GROUP BY day, stage
    )
)
ARRAY JOIN range(span) AS offset
ORDER BY day
