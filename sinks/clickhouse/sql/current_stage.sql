-- title: Where customers are now
-- Customers first seen in the period, by their current stage (the stage of their latest
-- transition). Stages only go up, so this is the furthest stage each has reached.
-- params: brand String = 'default', since Date = '1970-01-01' (all data), until Date = '2100-01-01' (exclusive; all data)
-- reads: journey.customer_current_stage (view over the customer_state rollup)
-- server: any (tested on ClickHouse 18.16 and 26.9)
SELECT
    stage,
    count() AS customers
FROM journey.customer_current_stage
WHERE brand = {brand:String}
  AND toDate(first_seen) >= {since:Date} AND toDate(first_seen) < {until:Date}
GROUP BY stage
ORDER BY stage
