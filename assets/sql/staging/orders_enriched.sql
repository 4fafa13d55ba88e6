-- @description: Completed orders joined to their customer; orders of unknown customers are dropped.
-- @owners: data@shop.example
SELECT
    o.order_id,
    o.customer_id,
    c.email,
    c.country,
    o.ordered_at,
    o.order_date,
    o.amount
FROM stg_orders AS o
JOIN stg_customers AS c ON o.customer_id = c.customer_id
