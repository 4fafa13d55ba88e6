-- @description: Revenue and units per store.
-- @group: marts
-- @tags: finance
SELECT
    store,
    sum(quantity) AS units,
    sum(quantity * unit_price) AS revenue
FROM raw_sales
GROUP BY store
