"""What the anomaly rules catch and what judging them costs, on seeded days (`lake_tools.anomaly_days`)
with five injected anomalies, each day judged as its daily run would: history read from the quality
log files the earlier days wrote (a local lake), then the day's readings judged.

- detection: each injected anomaly, the rule that caught it, the reading and its band; false alarms;
- cost per day, against the baseline of reading the whole log (every earlier run's file), which is
  what a reader without the newest-first bound would do.

    .venv/bin/python bench/bench_anomalies.py [--days 90] [--long 365] [--seed 7]
"""

import argparse
import statistics
import tempfile
import time

from lake_assets.lib.contracts import TMDB
from lake_assets.lib.contracts.anomalies import anomaly_rules
from lake_assets.lib.quality_log import QUALITY_LOG, LogReader, read_logs
from lake_assets.lib.storage.local import LocalStorage
from lake_tools.anomaly_days import Judged, days, replay


def detection(judged: list[Judged]) -> list[str]:
    lines = [f"{'day':<12}| {'injected':<50}| {'flagged by':<40}", "-" * 104]
    for j in judged:
        if j.day.anomaly or j.flagged:
            lines.append(
                f"{j.day.partition:<12}| {j.day.anomaly or '(none: a false alarm)':<50}| {', '.join(j.flagged) or 'MISSED':<40}"
            )
    injected = [j for j in judged if j.day.anomaly]
    caught = sum(1 for j in injected if j.flagged)
    false = sum(1 for j in judged if j.flagged and not j.day.anomaly)
    lines.append(f"detected {caught} of {len(injected)}; false alarms {false} in {len(judged) - len(injected)} normal days")
    return lines


def whole_log_ms(storage: LocalStorage) -> float:
    """The baseline: every log file of the table read, as the first version of this reader did."""
    started = time.perf_counter()
    keys = [o.key for o in storage.list(f"{QUALITY_LOG}/tmdb-") if o.key.endswith(".parquet")]
    read_logs(storage.get_bytes(key) or b"" for key in keys)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--long", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    window = max(r.window for r in anomaly_rules(TMDB, "tmdb_details"))
    rows = []
    for count in (args.days, args.long):
        with tempfile.TemporaryDirectory(prefix="bench-anomalies-") as folder:
            storage = LocalStorage(folder)
            judged = replay(days(count, args.seed), storage)
            if count == args.days:
                print("\n".join(detection(judged)), end="\n\n")
            last = judged[-1].day.partition
            started = time.perf_counter()
            LogReader(storage, TMDB.table).covering(last, window)
            bounded = (time.perf_counter() - started) * 1000
            read = statistics.median(j.read_seconds for j in judged[window:]) * 1000
            judge = statistics.median(j.judge_seconds for j in judged[window:]) * 1000
            rows.append((count, read, judge, bounded, whole_log_ms(storage)))
    print(f"{'days of history':<44}| " + " | ".join(f"{count:>16,}" for count, *_ in rows))
    print("-" * 84)
    print(f"{'per day: read history, newest first (ms)':<44}| " + " | ".join(f"{r[1]:>16.1f}" for r in rows))
    print(f"{'per day: judge 26 anomaly rules (ms)':<44}| " + " | ".join(f"{r[2]:>16.1f}" for r in rows))
    print(f"{'per day: read + judge, goal <= 50 ms':<44}| " + " | ".join(f"{r[1] + r[2]:>16.1f}" for r in rows))
    print(f"{'last day: newest-first read (ms)':<44}| " + " | ".join(f"{r[3]:>16.1f}" for r in rows))
    print(f"{'last day: baseline, whole log read (ms)':<44}| " + " | ".join(f"{r[4]:>16.1f}" for r in rows))


if __name__ == "__main__":
    main()
