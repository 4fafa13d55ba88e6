-- @description: Web sessions per day, how many ended in a purchase, and their average length.
-- @tags: web, daily
-- @owners: web@shop.example
SELECT
    CAST(started_at AS DATE) AS session_date,
    count(*) AS sessions,
    sum(CASE WHEN converted THEN 1 ELSE 0 END) AS converting_sessions,
    avg(duration_seconds) AS average_duration_seconds
FROM web_sessions
GROUP BY 1
