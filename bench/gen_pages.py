#!/usr/bin/env python3
"""Writes N users as static pages of the Testsigma users API for the benchmark.

Usage: gen_pages.py [--no-total-count] [--drop-every K] DIR USERS [PAGE_SIZE]

--no-total-count leaves `page_info.total_count` out, as some APIs do; --drop-every K leaves
out every K-th user (the same users otherwise, the pages shorter): a second poll of such pages
misses 1 in K users of the first.

Pages go to DIR/api/v1/users/p1.json, p2.json, ...; each links to the next with a path
(`/api/v1/users/p2.json`), which the exporter resolves against the API's origin. The users
look like the documented ones (UUID ids, e-mail, names, timestamps, statuses in a realistic
mix, some in upper case). Deterministic: the same arguments give the same bytes.
"""
import json
import os
import random
import sys
import uuid

FIRST = ["Jane", "John", "Priya", "Wei", "Olga", "Ahmed", "Maria", "Kenji", "Fatima", "Lucas"]
LAST = ["Doe", "Smith", "Sharma", "Zhang", "Ivanova", "Hassan", "Garcia", "Sato", "Okafor"]
STATUSES = ["active"] * 70 + ["inactive"] * 20 + ["invited"] * 7 + ["PENDING", "Suspended", ""]


def main():
    args = sys.argv[1:]
    total_count = "--no-total-count" not in args
    args = [a for a in args if a != "--no-total-count"]
    drop = 0
    if "--drop-every" in args:
        i = args.index("--drop-every")
        drop = int(args[i + 1])
        del args[i:i + 2]
    out, users = args[0], int(args[1])
    size = int(args[2]) if len(args) > 2 else 100
    rng = random.Random(users)
    pages = max(1, -(-users // size))
    folder = os.path.join(out, "api", "v1", "users")
    os.makedirs(folder, exist_ok=True)
    for p in range(1, pages + 1):
        data = []
        for i in range((p - 1) * size, min(p * size, users)):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            created = 1_600_000_000 + rng.randrange(100_000_000)
            user = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "email": f"{first.lower()}.{last.lower()}.{i}@example.com",
                "first_name": first,
                "last_name": last,
                "created_at": created,
                "updated_at": created + rng.randrange(10_000_000),
                "status": rng.choice(STATUSES),
            }
            if not drop or i % drop != drop - 1:
                data.append(user)
        body = {
            "message": "",
            "data": data,
            "page_info": {
                "page_size": size,
                "total_count": users - (users // drop if drop else 0),
                "next": f"/api/v1/users/p{p + 1}.json" if p < pages else "",
                "prev": f"/api/v1/users/p{p - 1}.json" if p > 1 else "",
            },
        }
        if not total_count:
            del body["page_info"]["total_count"]
        with open(os.path.join(folder, f"p{p}.json"), "w") as f:
            json.dump(body, f, separators=(",", ":"))
    print(pages)


if __name__ == "__main__":
    main()
