-- title: How people move: transitions between stages
-- Every move between two stages in the period, skips included: customers per (from_stage,
-- to_stage) whose transition occurred on a day in [since, until), with its kind (forward to the
-- next stage, or skip past one or more) and the first and last time it happened (event time,
-- UTC). from_stage 'none' is a first contact (none -> aware: new customers). Stages only go up,
-- so a customer makes each move at most once: the moves into a stage add up to the customers
-- entering it (stage_entries.sql). A skip explains a stage ratio above 1: customers who went
-- aware -> ask count in ask but never in appeal.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.live_transitions (view: transitions FINAL without retracted rows; the only library file that scans rows)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    from_stage,
    to_stage,
    kind,
    uniqExact(customer_id) AS customers,
    min(occurred_at) AS first_at,
    max(occurred_at) AS last_at
FROM journey.live_transitions
WHERE brand = {brand:String}
  AND toDate(occurred_at) >= {since:Date} AND toDate(occurred_at) < {until:Date}
GROUP BY from_stage, to_stage, kind
ORDER BY from_stage, to_stage
