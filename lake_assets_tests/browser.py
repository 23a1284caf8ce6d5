"""Headless Chromium driven through the DevTools protocol, for UI tests that must click (a tab the URL
does not name): open a page, wait for text, click an element by its text, take a screenshot.

Debian's `chromium` runs with the flags this machine needs (no sandbox as root, no background
networking, a fresh profile); the protocol goes over a loopback websocket (`websockets`).
"""

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

from lake_tools.processes import exited_at_start, free_port, kill_process, start_process, wait_until_ready

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class Browser:
    def __init__(self, width: int = 1440, height: int = 900):
        binary = shutil.which("chromium")
        if binary is None:
            raise RuntimeError("Chromium is not installed: lake_tools/bootstrap.sh test installs it (apt-get install chromium)")
        self._profile = tempfile.TemporaryDirectory(prefix="lake-chromium-")
        port = free_port()
        self._process = start_process(  # a session of its own: its helper processes go with it
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self._profile.name}",
                f"--remote-debugging-port={port}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            output=subprocess.DEVNULL,
        )
        try:
            page = self._page_target(port)
            self._socket = connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024)
        except BaseException:
            kill_process(self._process, group=True)
            self._profile.cleanup()
            raise
        self._ids = itertools.count(1)

    def _page_target(self, port: int, timeout: float = 30) -> dict:
        def first_page() -> dict | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as answer:
                return next((t for t in json.load(answer) if t["type"] == "page"), None)

        return wait_until_ready(
            f"Chromium's DevTools endpoint on port {port} ({timeout:.0f}s)",
            first_page,
            deadline=time.monotonic() + timeout,
            exited=exited_at_start(self._process, "Chromium"),
            every=0.2,
        )

    def _call(self, method: str, **params) -> dict:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        return self._call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url: str) -> None:
        self._call("Page.navigate", url=url)

    def on_every_page(self, script: str) -> None:
        """Run `script` in each page opened from now on, before the page's own (e.g. to time its load)."""
        self._call("Page.enable")  # without it, Chromium accepts the script and never runs it
        self._call("Page.addScriptToEvaluateOnNewDocument", source=script)

    def wait_for_text(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"document.body !== null && document.body.innerText.includes({json.dumps(text)})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on the page after {timeout:.0f}s")
            time.sleep(0.5)

    def click_text(self, text: str, selector: str = "button, [role=tab], a, div, span", last: bool = False) -> None:
        """Click the innermost element matching `selector` whose text is exactly `text` (the first on
        the page, or the last: e.g. a panel's tab named like the page's)."""
        clicked = self.evaluate(
            f"""((LAST) => {{
                const hits = [...document.querySelectorAll({json.dumps(selector)})].filter(e => e.innerText && e.innerText.trim() === {json.dumps(text)});
                const inner = hits.filter(e => !hits.some(o => o !== e && e.contains(o)));
                if (!inner.length) return false;
                inner[LAST ? inner.length - 1 : 0].click();
                return true;
            }})({json.dumps(last)})"""
        )
        if not clicked:
            raise AssertionError(f"no element with the text {text!r} to click")

    def select_all_and_type(self, text: str) -> None:
        """Replace the focused editor's content (Ctrl+A, then `text` as if typed): the launchpad's
        CodeMirror takes keyboard input only."""
        ctrl_a = {"key": "a", "code": "KeyA", "modifiers": 2, "windowsVirtualKeyCode": 65}
        self._call("Input.dispatchKeyEvent", type="keyDown", **ctrl_a)
        self._call("Input.dispatchKeyEvent", type="keyUp", **ctrl_a)
        self._call("Input.insertText", text=text)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self._socket.close()
        kill_process(self._process, group=True)
        self._profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
