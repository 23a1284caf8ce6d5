"""Run one benchmark and keep its latest table in docs/performance.md: `make bench` runs each one so.

    .venv/bin/python bench/record.py bench/bench_filmes.py [its options]
    .venv/bin/python bench/record.py --name bench_filmes_10m bench/bench_filmes.py --rows 10000000 --repeat 1

The benchmark's stdout (its table; progress goes to stderr) is shown as it comes. When the benchmark
succeeds, that output replaces what is between `<!-- bench:NAME begin -->` and
`<!-- bench:NAME end -->` in docs/performance.md (NAME: the script's name, or --name), as a fenced
block under one line with the command, the date and the machine. Text outside the markers is never
changed; a benchmark with no markers yet gets them at the end of the file. A failed or interrupted
benchmark changes nothing.
"""

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} begin -->", f"<!-- bench:{name} end -->"


def section(name: str, command: str, output: str, day: dt.date) -> str:
    """The text between and including NAME's markers: who measured what, where, and the table."""
    lines = [line.rstrip() for line in output.splitlines()]  # padded table cells leave trailing blanks
    body = "\n".join(lines).strip("\n")
    fence = "```"
    while fence in body:  # a fence the output cannot close
        fence += "`"
    begin, end = markers(name)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    return f"{begin}\n`{command}` on {day.isoformat()} ({machine}):\n\n{fence}\n{body}\n{fence}\n{end}"


def replace_section(text: str, name: str, new: str) -> str:
    """`text` with NAME's section replaced by `new`, or `new` appended when it has no markers yet."""
    begin, end = markers(name)
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: new, text, count=1)
    return f"{text.rstrip()}\n\n{new}\n"


def run(command: list[str]) -> tuple[int, str]:
    """Run `command`, copying its stdout to ours line by line; its exit status and its stdout."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines as they are printed, not when a pipe's buffer fills
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as process:
        captured = []
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            captured.append(line)
    return process.returncode, "".join(captured)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", help="the markers' name (default: the script's name without .py)")
    parser.add_argument("--doc", type=Path, default=DOC, help="the file to update (default: docs/performance.md)")
    parser.add_argument("script", type=Path, help="a benchmark in bench/")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options")
    args = parser.parse_args(argv)
    script = args.script.resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else args.script
    command = " ".join([shown.as_posix(), *args.options])
    try:
        status, output = run([sys.executable, str(script), *args.options])
    except KeyboardInterrupt:
        print(f"\nrecord: {command} interrupted; {args.doc.name} unchanged", file=sys.stderr)
        return 130
    if status != 0:
        print(f"record: {command} failed (exit {status}); {args.doc.name} unchanged", file=sys.stderr)
        return status
    name = args.name or script.stem
    text = args.doc.read_text(encoding="utf-8")
    updated = replace_section(text, name, section(name, command, output, dt.date.today()))
    # Written whole and then renamed, so an editor or a reader never sees half a file.
    temporary = args.doc.with_name(f".{args.doc.name}.tmp")
    temporary.write_text(updated, encoding="utf-8")
    temporary.replace(args.doc)
    doc = args.doc.resolve()
    print(f"record: {name}'s table is in {doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
