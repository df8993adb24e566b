-- title: PAR, BAR, the four stage ratios and the path shape
-- One row for a brand and period: the stage counts of stage_entries.sql, Kotler's purchase
-- action ratio (PAR = act / aware) and brand advocacy ratio (BAR = advocate / aware), the stage
-- ratios that locate a weak PAR or BAR (attraction = appeal / aware, curiosity = ask / appeal,
-- commitment = act / ask, affinity = advocate / act), the path shape and its distance to the
-- ideal bow tie. A ratio whose denominator is 0 is NULL (n/a).
-- Shape, checked in this order: trumpet (advocate > act), goldfish (ask > appeal), door knob
-- (act > ask), funnel (every stage <= the one before), else mixed. Bow tie distance:
-- sqrt(a^2 + b^2) with a = 1 - advocate/aware and b = 1 - act/appeal (b = 1 when appeal = 0),
-- each clamped to [0, 1]; 0 is the bow tie (advocate ~ aware, act ~ appeal); NULL when aware = 0.
-- These are the rules of fivea/ratios.py (PathMetrics), which `journey report` uses; the tests
-- keep the two equal.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.stage_entries_daily (rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    aware,
    appeal,
    ask,
    act,
    advocate,
    if(aware = 0, NULL, act / aware) AS par,
    if(aware = 0, NULL, advocate / aware) AS bar,
    if(aware = 0, NULL, appeal / aware) AS attraction,
    if(appeal = 0, NULL, ask / appeal) AS curiosity,
    if(ask = 0, NULL, act / ask) AS commitment,
    if(act = 0, NULL, advocate / act) AS affinity,
    multiIf(
        advocate > act, 'trumpet',
        ask > appeal, 'goldfish',
        act > ask, 'door knob',
        appeal <= aware AND ask <= appeal AND act <= ask AND advocate <= act, 'funnel',
        'mixed') AS shape,
    if(aware = 0, NULL, sqrt(
        pow(least(1, greatest(0, 1 - advocate / aware)), 2)
        + pow(least(1, greatest(0, 1 - if(appeal = 0, 0, act / appeal))), 2))) AS bow_tie_distance
FROM
(
    SELECT
        sumIf(n, stage = 'aware') AS aware,
        sumIf(n, stage = 'appeal') AS appeal,
        sumIf(n, stage = 'ask') AS ask,
        sumIf(n, stage = 'act') AS act,
        sumIf(n, stage = 'advocate') AS advocate
    FROM
    (
        SELECT stage, uniqExactMerge(entries) - uniqExactMerge(retractions) AS n
        FROM journey.stage_entries_daily
        WHERE brand = {brand:String}
          AND day >= {since:Date} AND day < {until:Date}
        GROUP BY stage
    )
)
