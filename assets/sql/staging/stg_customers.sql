-- @description: One row per customer: e-mails trimmed and lower-cased, countries upper-cased,
-- @description: re-exported duplicates dropped (the latest sign-up wins).
-- @tags: pii
-- @owners: data@shop.example
SELECT customer_id, name, email, country, signed_up_at
FROM (
    SELECT
        customer_id,
        trim(name) AS name,
        lower(trim(email)) AS email,
        upper(trim(country)) AS country,
        CAST(signed_up_at AS TIMESTAMP) AS signed_up_at,
        row_number() OVER (
            PARTITION BY customer_id
            ORDER BY CAST(signed_up_at AS TIMESTAMP) DESC
        ) AS position
    FROM raw_customers
) AS ranked
WHERE position = 1
