-- title: Time to convert
-- How long customers took, in milliseconds, from the dwell times of their transitions:
-- aware -> act for customers who entered act in the period (the dwell before appeal, ask and
-- act summed: exactly act.occurred_at - aware.occurred_at), act -> advocate for customers who
-- entered advocate in the period after buying (the dwell of their advocate transition).
-- Exact quantiles (quantilesExact: the value at position floor(level * count) of the sorted
-- values); NULL when no customer converted.
-- params: brand String, since Date, until Date (exclusive)
-- reads: journey.customer_current_stage (view over the customer_state rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    step,
    customers,
    if(customers = 0, NULL, q[1]) AS p25_ms,
    if(customers = 0, NULL, q[2]) AS p50_ms,
    if(customers = 0, NULL, q[3]) AS p75_ms,
    if(customers = 0, NULL, q[4]) AS p90_ms
FROM
(
    SELECT
        1 AS position,
        'aware -> act' AS step,
        count() AS customers,
        quantilesExact(0.25, 0.5, 0.75, 0.9)(assumeNotNull(aware_to_act_ms)) AS q
    FROM journey.customer_current_stage
    WHERE brand = {brand:String}
      AND toDate(act_at) >= {since:Date} AND toDate(act_at) < {until:Date}
    UNION ALL
    SELECT
        2 AS position,
        'act -> advocate' AS step,
        count() AS customers,
        quantilesExact(0.25, 0.5, 0.75, 0.9)(assumeNotNull(act_to_advocate_ms)) AS q
    FROM journey.customer_current_stage
    WHERE brand = {brand:String}
      AND toDate(advocate_at) >= {since:Date} AND toDate(advocate_at) < {until:Date}
      AND isNotNull(act_to_advocate_ms)
)
ORDER BY position
