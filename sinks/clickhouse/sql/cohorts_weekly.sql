-- title: Weekly cohorts
-- Customers grouped by the ISO week (Monday, UTC) they were first seen (became aware), for
-- first-seen days in [since, until), and how many of each cohort have entered each later stage
-- by now (any time after, not only within the period); par and bar are the cohort's act and
-- advocate shares.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.customer_current_stage (view over the customer_state rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    toMonday(toDate(first_seen)) AS cohort_week,
    count() AS customers,
    countIf(isNotNull(appeal_at)) AS appeal,
    countIf(isNotNull(ask_at)) AS ask,
    countIf(isNotNull(act_at)) AS act,
    countIf(isNotNull(advocate_at)) AS advocate,
    act / customers AS par,
    advocate / customers AS bar
FROM journey.customer_current_stage
WHERE brand = {brand:String}
  AND toDate(first_seen) >= {since:Date} AND toDate(first_seen) < {until:Date}
GROUP BY cohort_week
ORDER BY cohort_week
