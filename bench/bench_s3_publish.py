"""Publishing a trusted/filmes-sized table: `publish()` to S3 (a local SeaweedFS started here) and to
the local lake, against plain boto3 `upload_file` of the same Parquet files, side by side.

The table is 1,000,000 generated rows with the trusted/filmes columns, written by pyarrow as several
Parquet files (~50-100 MB). Each way runs --repeat times, interleaved; the table shows the median.

A second table isolates the commit: the manifest written by a plain PUT (the protocol before the
compare-and-swap) against a conditional one (If-Match on S3, the locked swap on disk), and the extra
manifest read the clean-up now makes, --commits times each, interleaved.

    .venv/bin/python bench/bench_s3_publish.py [--rows 1000000] [--files 8] [--repeat 5] [--commits 200]
"""

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake_assets.lib.storage import LocalStorage
from lake_assets.lib.storage.publish import MANIFEST, publish
from lake_assets.lib.storage.s3 import S3Storage
from lake_tools.seaweedfs import SeaweedS3

BUCKET = "bench"
WORDS = np.array(
    "silêncio noite drama perdas recomeços história amor guerra cidade família segredo viagem mar "
    "memória cinema verão inverno destino cartas estrada fronteira sombra luz tempo promessa".split()
)
COUNTRIES = np.array(["Brazil", "Portugal", "France", "United States of America", "Argentina", "Japan", "Italy"])
LANGUAGES = np.array(["pt", "en", "fr", "es", "ja", "it"])
GENRES = np.array(["Drama", "Crime", "Comédia", "Romance", "Thriller", "Documentário", "Animação", "Terror"])


def filmes_table(rows: int, rng: np.random.Generator) -> pa.Table:
    """trusted/filmes' columns and types, with values varied enough to compress like real text."""
    words = [pa.array(WORDS[rng.integers(0, len(WORDS), rows)]) for _ in range(14)]
    serial = pc.cast(pa.array(rng.integers(0, 10**9, rows)), pa.string())
    overview = pc.binary_join_element_wise(*words, serial, " ")
    titles = pc.binary_join_element_wise(
        pc.utf8_capitalize(words[0]), "e o", words[1], pc.cast(pa.array(np.arange(rows)), pa.string()), " "
    )
    genre_counts = rng.integers(1, 4, rows)
    genre_values = GENRES[rng.integers(0, len(GENRES), int(genre_counts.sum()))]
    offsets = np.concatenate([[0], np.cumsum(genre_counts)]).astype(np.int32)
    release = np.datetime64("1950-01-01") + rng.integers(0, 27000, rows).astype("timedelta64[D]")
    return pa.table(
        {
            "titulo": titles,
            "data_de_lancamento": pa.array(release.astype("datetime64[D]"), pa.date32()),
            "visao_geral": overview,
            "popularidade": pa.array(rng.gamma(2.0, 20.0, rows)),
            "votos": pa.array(rng.integers(0, 50_000, rows), pa.int64()),
            "media_de_votos": pa.array(np.round(rng.uniform(0, 10, rows), 1)),
            "pais_de_origem": pa.array(COUNTRIES[rng.integers(0, len(COUNTRIES), rows)]),
            "idioma_original": pa.array(LANGUAGES[rng.integers(0, len(LANGUAGES), rows)]),
            "generos": pa.ListArray.from_arrays(pa.array(offsets), pa.array(genre_values)),
        }
    )


def write_parts(table: pa.Table, folder: Path, files: int) -> list[Path]:
    folder.mkdir(parents=True)
    size = -(-table.num_rows // files)
    paths = []
    for index in range(files):
        path = folder / f"part-{index:05d}.snappy.parquet"
        pq.write_table(table.slice(index * size, size), path, compression="snappy")
        paths.append(path)
    return paths


def named(paths: list[Path]) -> dict[str, Path]:
    """Spark-style unique names: the same local files published under a new write id each time."""
    write_id = uuid.uuid4().hex[:12]
    return {f"part-{index:05d}-{write_id}.snappy.parquet": path for index, path in enumerate(paths)}


def commit_timings(s3: S3Storage, local: LocalStorage, count: int) -> dict[str, list[float]]:
    """Milliseconds per manifest write, plain and conditional, and per manifest read with its tag."""
    files = [{"name": f"part-{index:05d}-{uuid.uuid4()}.c000.snappy.parquet", "bytes": 12_345_678} for index in range(8)]
    manifest = json.dumps({"version": "x", "previous": "y", "files": files}, indent=1).encode()
    timings: dict[str, list[float]] = {}
    for backend, storage in (("S3", s3), ("local", local)):
        key = f"bench-commit/{MANIFEST}"
        plain, conditional, read = (
            timings.setdefault(f"{backend}: {name}", [])
            for name in (
                "plain PUT of the manifest (before)",
                "conditional PUT, If-Match / locked swap (now)",
                "manifest read with its tag (clean-up, now)",
            )
        )
        storage.put_bytes(manifest, key)
        for _ in range(count):
            begin = time.perf_counter()
            storage.put_bytes(manifest, key)
            plain.append((time.perf_counter() - begin) * 1000)
            tag = storage.get_with_etag(key)[1]
            begin = time.perf_counter()
            storage.put_bytes_if(manifest, key, expected_etag=tag)
            conditional.append((time.perf_counter() - begin) * 1000)
            begin = time.perf_counter()
            storage.get_with_etag(key)
            read.append((time.perf_counter() - begin) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--commits", type=int, default=200)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-s3-publish-"))
    server = SeaweedS3(work / "seaweedfs")
    try:
        started = time.perf_counter()
        paths = write_parts(filmes_table(args.rows, np.random.default_rng(7)), work / "parts", args.files)
        total = sum(path.stat().st_size for path in paths)
        print(
            f"{args.rows:,} rows in {len(paths)} Parquet files, {total / 1e6:.1f} MB (generated in {time.perf_counter() - started:.1f}s)"
        )

        server.start()
        os.environ.update(server.env())
        server.create_bucket(BUCKET)
        client = server.boto3_client()
        s3 = S3Storage(f"s3://{BUCKET}/lake", endpoint_url=server.endpoint_url)
        local = LocalStorage(work / "lake")

        def plain_boto3_sequential(run: int) -> None:
            for name, path in named(paths).items():
                client.upload_file(str(path), BUCKET, f"plain/{run}/{name}")

        def plain_boto3_threads(run: int) -> None:
            with ThreadPoolExecutor(4) as pool:
                list(
                    pool.map(
                        lambda item: client.upload_file(str(item[1]), BUCKET, f"plain4/{run}/{item[0]}"), named(paths).items()
                    )
                )

        def publish_s3_new(run: int) -> None:
            publish(s3, f"trusted/filmes-{run}", named(paths))

        def publish_s3_replace(run: int) -> None:
            publish(s3, "trusted/filmes", named(paths))  # replaces (and deletes) the previous version

        def publish_local(run: int) -> None:
            publish(local, f"trusted/filmes-{run}", named(paths))

        ways = {
            "boto3 upload_file, one file at a time": plain_boto3_sequential,
            "boto3 upload_file, 4 files at a time": plain_boto3_threads,
            "publish() -> S3, new folder": publish_s3_new,
            "publish() -> S3, replacing a version": publish_s3_replace,
            "publish() -> local lake": publish_local,
        }
        publish(s3, "trusted/filmes", named(paths))  # the version the "replacing" runs replace
        seconds = {name: [] for name in ways}
        for run in range(args.repeat):
            for name, way in ways.items():
                begin = time.perf_counter()
                way(run)
                seconds[name].append(time.perf_counter() - begin)
        commits = commit_timings(s3, local, args.commits)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    baseline = statistics.median(seconds["boto3 upload_file, one file at a time"])
    print(f"\n{dt.date.today()}, {os.cpu_count()} cores shared, SeaweedFS `weed mini` on loopback, median of {args.repeat}\n")
    print(f"| {'way':<38} | {'seconds':>7} | {'min-max':>11} | {'MB/s':>6} | {'vs plain boto3':>14} |")
    print(f"|{'-' * 40}|{'-' * 9}|{'-' * 13}|{'-' * 8}|{'-' * 16}|")
    for name, runs in seconds.items():
        median = statistics.median(runs)
        spread = f"{min(runs):.2f}-{max(runs):.2f}"
        print(f"| {name:<38} | {median:>7.2f} | {spread:>11} | {total / 1e6 / median:>6.0f} | {median / baseline:>13.2f}x |")

    print(f"\nThe commit alone: one ~1 KB manifest, {args.commits} times each way, interleaved; milliseconds\n")
    print(f"| {'way':<52} | {'median':>6} | {'p90':>6} | {'vs plain PUT':>12} |")
    print(f"|{'-' * 54}|{'-' * 8}|{'-' * 8}|{'-' * 14}|")
    for backend in ("S3", "local"):
        plain = statistics.median(commits[f"{backend}: plain PUT of the manifest (before)"])
        for name, runs in commits.items():
            if name.startswith(backend):
                median, p90 = statistics.median(runs), statistics.quantiles(runs, n=10)[-1]
                print(f"| {name:<52} | {median:>6.2f} | {p90:>6.2f} | {median / plain:>11.2f}x |")


if __name__ == "__main__":
    main()
