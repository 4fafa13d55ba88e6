#!/usr/bin/env python3
"""Generates the demo shop's raw data, deterministically: the same files on every run.

    python3 assets/data/generate.py

Writes customers.csv, orders.csv and events.jsonl next to this script. The data is deliberately
a little dirty (duplicate customers, inconsistent e-mail case, cancelled, refunded and test orders,
orders of unknown customers) so the cleaning assets have something to do.
"""

import datetime as dt
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)
DAYS = 61
COUNTRIES = ["fr", "DE", "es", "IT", "nl", "BE"]
FIRST = ["Ada", "Ben", "Chloé", "Dev", "Eva", "Finn", "Gia", "Hugo", "Iris", "Jon", "Kai", "Lena"]
LAST = ["Martin", "Schmidt", "García", "Rossi", "de Vries", "Peeters", "Dubois", "Müller"]
PAGES = ["/", "/search", "/p/coffee", "/p/tea", "/p/cake", "/p/mug", "/cart", "/checkout"]


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    rng = random.Random(20261122)

    customers = []
    for cid in range(1, 301):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"{name.split()[0].lower()}.{cid}@example.com"
        if rng.random() < 0.2:
            email = f"  {email.upper()} "
        signed = START - dt.timedelta(days=rng.randint(1, 400), seconds=rng.randint(0, 86399))
        customers.append([cid, name, email, rng.choice(COUNTRIES), iso(signed)])
    # Re-exported rows: the same customer twice, the later export with a newer sign-up time.
    for cid in rng.sample(range(1, 301), 12):
        row = list(customers[cid - 1])
        row[2] = row[2].strip().lower()
        row[4] = iso(dt.datetime.strptime(row[4], "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(hours=1))
        customers.append(row)

    with open(HERE / "customers.csv", "w", encoding="utf-8") as f:
        f.write("customer_id,name,email,country,signed_up_at\n")
        for c in customers:
            f.write(",".join(f'"{v}"' if isinstance(v, str) and "," in v else str(v) for v in c) + "\n")

    with open(HERE / "orders.csv", "w", encoding="utf-8") as f:
        f.write("order_id,customer_id,ordered_at,status,amount\n")
        for oid in range(1, 3001):
            cid = rng.randint(1, 300) if rng.random() > 0.01 else rng.randint(900, 999)
            t = START + dt.timedelta(days=rng.randrange(DAYS), seconds=rng.randint(0, 86399))
            status = rng.choices(["completed", "cancelled", "refunded", "pending"], [85, 7, 5, 3])[0]
            amount = f"{rng.uniform(5, 250):.2f}"
            roll = rng.random()
            if roll < 0.01:
                amount = ""  # lost in export
            elif roll < 0.02:
                amount = "0.00"  # test order
            f.write(f"{100000 + oid},{cid},{iso(t)},{status},{amount}\n")

    with open(HERE / "events.jsonl", "w", encoding="utf-8") as f:
        events = []
        for _ in range(900):
            cid = rng.randint(1, 300)
            t = START + dt.timedelta(days=rng.randrange(DAYS), seconds=rng.randint(0, 80000))
            for _ in range(rng.randint(1, 9)):
                page = rng.choice(PAGES)
                kind = "purchase" if page == "/checkout" and rng.random() < 0.6 else "page_view"
                events.append({"customer_id": cid, "ts": iso(t), "event": kind, "page": page})
                t += dt.timedelta(seconds=rng.randint(5, 900) if rng.random() > 0.1 else rng.randint(1900, 7200))
        rng.shuffle(events)
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
