"""`python -m lake_assets.cli.report [--table tmdb|filmes]`: the path of the latest quality report
(`trusted/_quality/<table>-<time>-<run>.html`), opened in a browser when one is at hand.

A report in an S3 lake is copied to `.lake-reports/` first, since a browser cannot open `s3://`.
"""

import argparse
import sys
import webbrowser
from pathlib import Path

from lake_assets.defs.resources import lake_resource_from_env
from lake_assets.lib.quality_log import QUALITY_LOG
from lake_assets.lib.storage.local import LocalStorage

LOCAL_COPIES = Path(".lake-reports")


def latest(storage, table: str | None) -> str | None:
    """The key of the newest report (of `table`, else of any table): names sort by the run's time."""
    reports = [o.key for o in storage.list(f"{QUALITY_LOG}/") if o.key.endswith(".html")]
    if table:
        reports = [key for key in reports if key.rsplit("/", 1)[-1].startswith(f"{table}-")]
    return max(reports, key=lambda key: key.rsplit("-", 2)[-2], default=None)  # <table>-<time>-<run>.html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_assets.cli.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=["tmdb", "filmes"], help="only this table's reports (default: any)")
    parser.add_argument("--no-open", action="store_true", help="print the path only")
    args = parser.parse_args(argv)
    storage = lake_resource_from_env().storage("trusted")
    key = latest(storage, args.table)
    if key is None:
        print(
            f"lake_assets: no quality report under {storage.uri(QUALITY_LOG)} yet: materialise a trusted asset first (make run)"
        )
        return 1
    if isinstance(storage, LocalStorage):
        path = Path(storage.uri(key))
    else:
        path = LOCAL_COPIES / key.rsplit("/", 1)[-1]
        LOCAL_COPIES.mkdir(exist_ok=True)
        path.write_bytes(storage.get_bytes(key) or b"")
        print(f"lake_assets: {storage.uri(key)} copied to", file=sys.stderr)
    print(path.resolve())
    browser = None if args.no_open else _graphical_browser()
    if browser is not None:
        browser.open(path.resolve().as_uri())
    return 0


def _graphical_browser() -> webbrowser.BaseBrowser | None:
    """The browser Python finds, unless there is none or it is a console one (lynx, w3m: what a
    machine without a display offers), which would take over the terminal."""
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return None
    return None if type(browser) is webbrowser.GenericBrowser else browser


if __name__ == "__main__":
    sys.exit(main())
