-- @description: Completed orders with a positive amount (drops cancelled, refunded, pending,
-- @description: test and amount-less orders), with typed timestamps and an order date.
-- @owners: data@shop.example
SELECT
    order_id,
    customer_id,
    CAST(ordered_at AS TIMESTAMP) AS ordered_at,
    CAST(CAST(ordered_at AS TIMESTAMP) AS DATE) AS order_date,
    CAST(amount AS DOUBLE) AS amount
FROM raw_orders
WHERE status = 'completed'
  AND amount > 0
