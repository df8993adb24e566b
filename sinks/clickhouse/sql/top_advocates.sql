-- title: Customers brought by each advocate
-- Per advocate (the referrer_id of referred customers' aware transitions), the new customers
-- they brought in the period, most first (ties by advocate id). Remove the LIMIT for all.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data), limit UInt32 = 20
-- reads: journey.referrals_daily (rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    referrer_id AS advocate,
    uniqExactMerge(entries) - uniqExactMerge(retractions) AS referred
FROM journey.referrals_daily
WHERE brand = {brand:String}
  AND day >= {since:Date} AND day < {until:Date}
GROUP BY referrer_id
HAVING referred > 0
ORDER BY referred DESC, advocate
LIMIT {limit:UInt32}
