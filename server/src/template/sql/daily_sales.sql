-- @description: Revenue per day across all stores.
-- @group: marts
SELECT
    CAST(sold_on AS DATE) AS day,
    sum(quantity * unit_price) AS revenue
FROM raw_sales
GROUP BY 1
