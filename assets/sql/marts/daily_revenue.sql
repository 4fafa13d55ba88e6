-- @description: Revenue, orders and buying customers per day.
-- @tags: finance, daily
-- @owners: finance@shop.example
-- @freshness: max_age=1d warn_after=12h
SELECT
    order_date,
    count(*) AS orders,
    count(DISTINCT customer_id) AS customers,
    sum(amount) AS revenue
FROM orders_enriched
GROUP BY order_date
