"""Checks the demo project's Parquet outputs with an independent reader (pyarrow) against
aggregates computed here, in plain Python, from the raw files.

Usage: python check_demo.py PROJECT_DIR STATUS_JSON_FILE
Prints one line per failed check and exits non-zero if any failed.
"""

import csv
import datetime as dt
import json
import sys
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq

project = Path(sys.argv[1])
status = {a["key"]: a for a in json.load(open(sys.argv[2]))}
failures = []


def check(name, got, want, tolerance=None):
    ok = abs(got - want) <= tolerance if tolerance is not None else got == want
    if not ok:
        failures.append(f"{name}: got {got!r}, want {want!r}")


def table(key):
    url = urlparse(status[key]["location"])
    assert url.scheme == "file", url
    return pq.read_table(unquote(url.path)).to_pylist()


def ts(s):
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")


# The cleaning rules, restated.
customers = {}
for row in csv.DictReader(open(project / "data/customers.csv", encoding="utf-8")):
    cid = int(row["customer_id"])
    if cid not in customers or ts(row["signed_up_at"]) > ts(customers[cid]["signed_up_at"]):
        customers[cid] = row
orders = []
for row in csv.DictReader(open(project / "data/orders.csv", encoding="utf-8")):
    if row["status"] == "completed" and row["amount"] and float(row["amount"]) > 0:
        orders.append(row)
enriched = [o for o in orders if int(o["customer_id"]) in customers]

# Staging.
stg_customers = table("stg_customers")
check("stg_customers rows", len(stg_customers), len(customers))
check("stg_customers emails are clean", all(c["email"] == c["email"].strip().lower() for c in stg_customers), True)
check("stg_orders rows", len(table("stg_orders")), len(orders))
check("orders_enriched rows", len(table("orders_enriched")), len(enriched))

# Daily revenue.
want_daily = defaultdict(lambda: [0, 0.0, set()])
for o in enriched:
    day = want_daily[ts(o["ordered_at"]).date()]
    day[0] += 1
    day[1] += float(o["amount"])
    day[2].add(o["customer_id"])
daily = {r["order_date"]: r for r in table("daily_revenue")}
check("daily_revenue days", sorted(daily), sorted(want_daily))
for day, (n, revenue, buyers) in want_daily.items():
    got = daily.get(day, {"orders": None, "revenue": -1.0, "customers": None})
    check(f"daily_revenue {day} orders", got["orders"], n)
    check(f"daily_revenue {day} customers", got["customers"], len(buyers))
    check(f"daily_revenue {day} revenue", got["revenue"], revenue, tolerance=1e-6)
total = sum(float(o["amount"]) for o in enriched)
check("daily_revenue total", sum(r["revenue"] for r in daily.values()), total, tolerance=1e-6)

# Customer lifetime value.
clv = table("customer_lifetime_value")
spend = defaultdict(float)
for o in enriched:
    spend[int(o["customer_id"])] += float(o["amount"])
check("customer_lifetime_value rows", len(clv), len(spend))
check("customer_lifetime_value total", sum(r["lifetime_value"] for r in clv), total, tolerance=1e-6)
best = max(clv, key=lambda r: r["lifetime_value"])
check("top customer", best["customer_id"], max(spend, key=spend.get))

# Sessions: events of a customer at most 30 minutes apart.
events = defaultdict(list)
for line in open(project / "data/events.jsonl", encoding="utf-8"):
    e = json.loads(line)
    events[e["customer_id"]].append((ts(e["ts"]), e["event"]))
want_sessions, want_converting = 0, 0
for evs in events.values():
    evs.sort()
    last, converted = None, False
    for t, kind in evs:
        if last is None or (t - last).total_seconds() > 1800:
            if last is not None:
                want_converting += converted
            want_sessions += 1
            converted = False
        converted |= kind == "purchase"
        last = t
    want_converting += converted
sessions = table("web_sessions")
check("web_sessions rows", len(sessions), want_sessions)
check("web_sessions converting", sum(s["converted"] for s in sessions), want_converting)
daily_sessions = table("daily_sessions")
check("daily_sessions total", sum(r["sessions"] for r in daily_sessions), want_sessions)
check("daily_sessions converting", sum(r["converting_sessions"] for r in daily_sessions), want_converting)

for f in failures:
    print(f)
if not failures:
    print(f"ok: {len(enriched)} orders, revenue {total:.2f}, {want_sessions} sessions")
sys.exit(1 if failures else 0)
