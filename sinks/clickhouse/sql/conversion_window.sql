-- title: Conversion within a window (funnel conversion)
-- Funnel conversion as PostHog and Mixpanel define it: of the persons first seen (their live
-- aware transition) on a day in [since, until), how many entered each stage within
-- `window_days` days of that first contact (its event time + window_days days, inclusive; UTC),
-- whenever that was, inside the period or after it, and that share of them. Stages may be
-- skipped: "reached act" is "entered act", whatever the way. The aware row is the cohort
-- itself (share 1). Unlike the period counts of stage_entries.sql (everyone entering a stage
-- in the period, whenever they were first seen), every figure here follows one group of
-- persons; a person first seen less than window_days before the data's last event has not had
-- the whole window yet (recent cohorts read low, as in both tools).
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data), window_days UInt32 = 30
-- reads: journey.customer_current_stage (view over the customer_state rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    tupleElement(row, 1) AS stage,
    tupleElement(row, 2) AS first_seen_in_period,
    tupleElement(row, 3) AS reached_within_window,
    if(first_seen_in_period = 0, NULL, reached_within_window / first_seen_in_period) AS window_conversion
FROM
(
    SELECT arrayJoin([('aware', cohort, cohort), ('appeal', cohort, appeal), ('ask', cohort, ask),
                      ('act', cohort, act), ('advocate', cohort, advocate)]) AS row
    FROM
    (
        SELECT
            count() AS cohort,
            countIf(ifNull(appeal_at <= addDays(first_seen, {window_days:UInt32}), 0)) AS appeal,
            countIf(ifNull(ask_at <= addDays(first_seen, {window_days:UInt32}), 0)) AS ask,
            countIf(ifNull(act_at <= addDays(first_seen, {window_days:UInt32}), 0)) AS act,
            countIf(ifNull(advocate_at <= addDays(first_seen, {window_days:UInt32}), 0)) AS advocate
        FROM journey.customer_current_stage
        WHERE brand = {brand:String}
          AND toDate(first_seen) >= {since:Date} AND toDate(first_seen) < {until:Date}
    )
)
