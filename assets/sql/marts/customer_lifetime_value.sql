-- @description: Lifetime value per customer: completed orders, total and average spend,
-- @description: first and last order.
-- @tags: finance, crm
-- @owners: crm@shop.example
SELECT
    customer_id,
    email,
    country,
    count(*) AS orders,
    sum(amount) AS lifetime_value,
    avg(amount) AS average_order_value,
    min(ordered_at) AS first_order_at,
    max(ordered_at) AS last_order_at
FROM orders_enriched
GROUP BY customer_id, email, country
