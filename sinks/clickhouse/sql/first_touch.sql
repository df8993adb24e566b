-- title: Breakdown by first touch: acquisition channel, influence zone or campaign
-- Stage counts, PAR, BAR and the four stage ratios per value of the person's first touch: the
-- channel, influence zone (O-zone) or campaign of their live aware transition (their first
-- contact; '' = it had none), chosen by `by` (channel, influence or campaign). The counts are
-- those of stage_entries.sql (customers entering each stage on a day in [since, until), live
-- rows only), each entry attributed to the first touch of the person who made it, wherever
-- and whenever that first contact was: a person first seen before the period who bought in
-- it counts in act, not in aware. So the rows add up to stage_entries.sql, and a group's
-- ratios read like the report's (PAR = act / aware ...; NULL when the denominator is 0). The
-- triggering-channel view, by the channel of the event that moved them into each stage, is
-- channel_mix.sql. Groups with no entry in the period are left out; most aware first.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data), by String = 'channel' (channel, influence or campaign)
-- reads: journey.customer_current_stage (view over the customer_state rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    first_touch,
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
    if(act = 0, NULL, advocate / act) AS affinity
FROM
(
    SELECT
        multiIf({by:String} = 'influence', first_influence, {by:String} = 'campaign', first_campaign,
                first_channel) AS first_touch,
        countIf(toDate(first_seen) >= {since:Date} AND toDate(first_seen) < {until:Date}) AS aware,
        countIf(ifNull(toDate(appeal_at) >= {since:Date} AND toDate(appeal_at) < {until:Date}, 0)) AS appeal,
        countIf(ifNull(toDate(ask_at) >= {since:Date} AND toDate(ask_at) < {until:Date}, 0)) AS ask,
        countIf(ifNull(toDate(act_at) >= {since:Date} AND toDate(act_at) < {until:Date}, 0)) AS act,
        countIf(ifNull(toDate(advocate_at) >= {since:Date} AND toDate(advocate_at) < {until:Date}, 0)) AS advocate
    FROM journey.customer_current_stage
    WHERE brand = {brand:String}
    GROUP BY first_touch
)
WHERE aware + appeal + ask + act + advocate > 0
ORDER BY aware DESC, first_touch
