-- title: Referral reach
-- The network effect for a brand and period: referred = new customers whose aware transition
-- in the period carries a referrer_id (brought by that advocate's share); referring_advocates =
-- the distinct advocates who brought them; advocates = customers who entered advocate in the
-- period; viral_coefficient = referred / advocates (DESIGN.md §1); referred_per_referrer =
-- referred / referring_advocates. NULL (n/a) for a zero denominator.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.referrals_daily and journey.stage_entries_daily (rollups)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    referred,
    referring_advocates,
    advocates,
    if(advocates = 0, NULL, referred / advocates) AS viral_coefficient,
    if(referring_advocates = 0, NULL, referred / referring_advocates) AS referred_per_referrer
FROM
(
    SELECT
        (SELECT uniqExactMerge(entries) - uniqExactMerge(retractions) FROM journey.referrals_daily
         WHERE brand = {brand:String} AND day >= {since:Date} AND day < {until:Date}) AS referred,
        (SELECT count() FROM
            (SELECT referrer_id FROM journey.referrals_daily
             WHERE brand = {brand:String} AND day >= {since:Date} AND day < {until:Date}
             GROUP BY referrer_id
             HAVING uniqExactMerge(entries) > uniqExactMerge(retractions))) AS referring_advocates,
        (SELECT uniqExactMerge(entries) - uniqExactMerge(retractions) FROM journey.stage_entries_daily
         WHERE brand = {brand:String} AND day >= {since:Date} AND day < {until:Date}
           AND stage = 'advocate') AS advocates
)
