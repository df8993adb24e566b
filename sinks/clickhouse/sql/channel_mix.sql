-- title: Channels per stage
-- Customers entering each stage in the period by the channel of the event that moved them
-- ('' = the event had no channel), most aware customers first.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.stage_entries_daily (rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    channel,
    sumIf(n, stage = 'aware') AS aware,
    sumIf(n, stage = 'appeal') AS appeal,
    sumIf(n, stage = 'ask') AS ask,
    sumIf(n, stage = 'act') AS act,
    sumIf(n, stage = 'advocate') AS advocate
FROM
(
    SELECT channel, stage, uniqExactMerge(entries) - uniqExactMerge(retractions) AS n
    FROM journey.stage_entries_daily
    WHERE brand = {brand:String}
      AND day >= {since:Date} AND day < {until:Date}
    GROUP BY channel, stage
)
GROUP BY channel
ORDER BY aware DESC, channel
