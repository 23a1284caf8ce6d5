"""raw/tmdb_json's collector vs the seed's sequential loop, against the same fake TMDB, side by side.

The fake answers with 100 ms of latency and refuses (429) more than 40 requests in any second, as
TMDB does. The seed-style collector is the original Glue script's loop with its paging bug fixed
(it stepped `range(1, N+1, 10000)`, so it only ever read page 1): page by page, details for every
listed movie, then the Drama/Romance filter on the details' genre names; a new connection pool per
call, no retries. Goal for the project's collector: >= 4x faster, >= 85% of the rate limit used.

    .venv/bin/python bench/bench_tmdb_collect.py [--pages 50] [--rate 40] [--latency 0.1]
"""

import argparse
import json
import logging
import time

import urllib3
from common import print_table

from lake_assets.defs.resources.tmdb import TMDBResource
from lake_tools.fake_tmdb import API_KEY, TOKEN, FakeTMDB, expected_records


def seed_style_collect(base_url: str, pages: int) -> list[dict]:
    """The seed's loop (the original Glue script's trusted step), sequential, paging fixed."""
    kept = []
    for page in range(1, pages + 1):
        http = urllib3.PoolManager()
        response = http.request("GET", f"{base_url}/movie/top_rated?api_key={API_KEY}&language=pt-BR&page={page}")
        for movie in json.loads(response.data)["results"]:
            http = urllib3.PoolManager()
            details = json.loads(http.request("GET", f"{base_url}/movie/{movie['id']}?api_key={API_KEY}&language=pt-BR").data)
            generos = [genre["name"] for genre in details["genres"]]
            if "Romance" in generos or "Drama" in generos:
                kept.append(details)
    return kept


def run(name: str, collect, args) -> dict:
    with FakeTMDB(
        total_pages=552, duplicates=True, latency_s=args.latency, rate_limit_per_s=args.rate, retry_after_s=1
    ) as server:
        started = time.monotonic()
        records = collect(server.base_url)
        wall = time.monotonic() - started
    return {
        "name": name,
        "wall": wall,
        "requests": len(server.hits),
        "rate": len(server.hits) / wall,
        "limit_used": len(server.hits) / wall / args.rate,
        "peak": server.max_requests_in_window(1.0),
        "429s": sum(h.status == 429 for h in server.hits),
        "records": len(records),
        "ids": {r["id"] for r in records},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--rate", type=float, default=40.0, help="the server's limit, requests per second")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every answer")
    parser.add_argument("--verbose", action="store_true", help="show the collector's progress log")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")

    def project(base_url: str) -> list[dict]:
        resource = TMDBResource(base_url=base_url, read_access_token=TOKEN, pages=args.pages, rate_limit_per_s=args.rate)
        return resource.collect().records

    print(f"{args.pages} top_rated pages, server: {args.rate:g} requests/s limit, {args.latency * 1000:g} ms latency", flush=True)
    ours = run("lake_assets TMDBResource.collect", project, args)
    print(f"  {ours['name']}: {ours['wall']:.1f} s", flush=True)
    seed = run("seed-style sequential loop", lambda base_url: seed_style_collect(base_url, args.pages), args)
    print(f"  {seed['name']}: {seed['wall']:.1f} s\n", flush=True)

    expected = {r["id"] for r in expected_records(args.pages, duplicates=True)}
    header = ("collector", "wall s", "requests", "req/s", "limit used", "peak/1s", "429s", "records", "unique ids")
    rows = [
        (
            r["name"],
            f"{r['wall']:.1f}",
            str(r["requests"]),
            f"{r['rate']:.1f}",
            f"{r['limit_used']:.0%}",
            str(r["peak"]),
            str(r["429s"]),
            str(r["records"]),
            str(len(r["ids"])),
        )
        for r in (ours, seed)
    ]
    print_table(header, rows)

    speedup = seed["wall"] / ours["wall"]
    print(
        f"\nspeed-up: {speedup:.1f}x (goal >= 4x); rate limit used: {ours['limit_used']:.0%} (goal >= 85%); "
        f"requests saved: {seed['requests'] - ours['requests']} ({1 - ours['requests'] / seed['requests']:.0%})"
    )
    print(
        f"same movies: {ours['ids'] == seed['ids'] == expected} "
        f"(seed-style keeps {seed['records'] - len(seed['ids'])} duplicate records)"
    )


if __name__ == "__main__":
    main()
