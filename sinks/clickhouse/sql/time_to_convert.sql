-- title: Time to convert
-- How long customers took, in milliseconds, from the dwell times of their transitions:
-- aware -> act for customers who entered act in the period (the dwell before appeal, ask and
-- act summed: exactly act.occurred_at - aware.occurred_at), act -> advocate for customers who
-- entered advocate in the period after buying (the dwell of their advocate transition).
-- Exact quantiles (quantilesExact: the value at position floor(level * count) of the sorted
-- values); NULL when no customer converted. Both steps come from one pass over the customers
-- (the -If combinator), then one row per step (arrayJoin).
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.customer_current_stage (view over the customer_state rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    tupleElement(row, 1) AS step,
    tupleElement(row, 2) AS customers,
    if(customers = 0, NULL, tupleElement(row, 3)[1]) AS p25_ms,
    if(customers = 0, NULL, tupleElement(row, 3)[2]) AS p50_ms,
    if(customers = 0, NULL, tupleElement(row, 3)[3]) AS p75_ms,
    if(customers = 0, NULL, tupleElement(row, 3)[4]) AS p90_ms
FROM
(
    SELECT arrayJoin([('aware -> act', bought, to_act), ('act -> advocate', advocated, to_advocate)]) AS row
    FROM
    (
        SELECT
            countIf(bought_in_period) AS bought,
            quantilesExactIf(0.25, 0.5, 0.75, 0.9)(ifNull(aware_to_act_ms, 0), bought_in_period) AS to_act,
            countIf(advocated_in_period) AS advocated,
            quantilesExactIf(0.25, 0.5, 0.75, 0.9)(ifNull(act_to_advocate_ms, 0), advocated_in_period) AS to_advocate
        FROM
        (
            SELECT
                aware_to_act_ms,
                act_to_advocate_ms,
                ifNull(toDate(act_at) >= {since:Date} AND toDate(act_at) < {until:Date}, 0) AS bought_in_period,
                ifNull(toDate(advocate_at) >= {since:Date} AND toDate(advocate_at) < {until:Date}
                       AND isNotNull(act_to_advocate_ms), 0) AS advocated_in_period
            FROM journey.customer_current_stage
            WHERE brand = {brand:String}
        )
    )
)
