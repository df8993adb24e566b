-- title: What moved them: influence zone per stage
-- For each stage, the customers who entered it in the period by the O-zone of the event that
-- moved them (Kotler's own / other / outer influence): own = their own initiative (direct,
-- organic, app), other = peers (a referrer, social, referral, review and community channels),
-- outer = marketing (a campaign, paid and email channels). Shares are of the stage's entries.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.stage_entries_daily (rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    stage,
    own + other + outer AS customers,
    sumIf(n, influence = 'own') AS own,
    sumIf(n, influence = 'other') AS other,
    sumIf(n, influence = 'outer') AS outer,
    if(customers = 0, NULL, own / customers) AS own_share,
    if(customers = 0, NULL, other / customers) AS other_share,
    if(customers = 0, NULL, outer / customers) AS outer_share
FROM
(
    SELECT stage, influence, uniqExactMerge(entries) - uniqExactMerge(retractions) AS n
    FROM journey.stage_entries_daily
    WHERE brand = {brand:String}
      AND day >= {since:Date} AND day < {until:Date}
    GROUP BY stage, influence
)
GROUP BY stage
ORDER BY stage
