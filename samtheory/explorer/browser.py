"""Drive the explorer app in headless Chromium: serve the marimo app (``experiments/explorer.py`` in a clone)
with ``marimo run`` on a loopback port, open it with Playwright's Python package, move sliders and read the views.

Used by ``tests/test_explorer.py``, by ``experiments/explorer_timing.py`` and to take the README screenshot, from
the repository root:

    python -m samtheory.explorer.browser docs/explorer.png

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install -y chromium``); nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

#: The app, relative to the repository root (the working directory by default).
NOTEBOOK = Path("experiments") / "explorer.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run")
VIEWS = ("trajectories", "regime maps", "loss and gamma")  # the alt texts of the three figures
# What the page shows when something failed: marimo's toast for an exception in a cell (run mode hides
# tracebacks), a traceback (edit mode), and the app's own callout for invalid input.
ERROR_TEXTS = ("An internal error occurred", "Traceback", "Invalid input")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def served(notebook=NOTEBOOK, timeout: float = 120.0):
    """``marimo run`` the app ``notebook`` on a free loopback port; yields its URL and stops the server on exit."""
    notebook = Path(notebook)
    if not notebook.is_file():
        raise ValueError(f"notebook: no explorer app at {str(notebook)!r} (run from the repository root or pass "
                         "the path of experiments/explorer.py)")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "marimo", "run", str(notebook), "--headless", "--host", "127.0.0.1",
               "--port", str(port), "--no-token", "--no-sandbox"]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "MPLBACKEND": "Agg"})
        try:
            deadline = time.monotonic() + timeout
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"marimo run exited with status {server.returncode}:\n{log.read()[-3000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"marimo run did not answer on {url} within {timeout:.0f} s")
                time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@contextlib.contextmanager
def chromium():
    """Headless Debian Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


class AppPage:
    """The explorer opened in a browser tab, once all three figures are shown."""

    def __init__(self, browser, url: str, *, width: int = 1400, height: int = 1000, timeout: float = 120.0):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.console_errors: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.console_errors.append(f"page error: {error}"))
        self.page.goto(url)
        for view in VIEWS:
            self.page.wait_for_selector(f"img[alt='{view}']", timeout=timeout * 1000)

    def _on_console(self, message):
        # Exceptions in cells reach the browser console as "[STDERR] ... error ..." lines.
        if message.type == "error" or ("[STDERR]" in message.text and "error" in message.text.lower()):
            self.console_errors.append(message.text[:500])

    def sources(self) -> dict[str, str]:
        """The data URL of each figure."""
        return {view: self.page.locator(f"img[alt='{view}']").first.get_attribute("src") for view in VIEWS}

    def explanation(self) -> str:
        return self.page.locator("table").first.inner_text()

    def slider(self, label: str):
        return self.page.locator("marimo-slider").filter(has_text=label).locator("[role=slider]").first

    def press(self, label: str, key: str = "ArrowRight", times: int = 1) -> None:
        """Move the slider labelled ``label`` by ``times`` key presses."""
        thumb = self.slider(label)
        thumb.focus()
        for _ in range(times):
            thumb.press(key)

    def wait_for_change(self, before: dict[str, str], timeout: float = 60.0) -> float:
        """Seconds until every figure differs from ``before`` (``TimeoutError`` after ``timeout``)."""
        start = time.perf_counter()
        while True:
            now = self.sources()
            if all(now[view] != before[view] for view in VIEWS):
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                unchanged = [view for view in VIEWS if now[view] == before[view]]
                raise TimeoutError(f"the views {unchanged} did not change within {timeout:.0f} s")
            time.sleep(0.05)

    def errors(self) -> list[str]:
        """Error messages shown on the page or printed to the browser console."""
        # get_by_text also searches the shadow roots the outputs are rendered in (inner_text does not).
        shown = [marker for marker in ERROR_TEXTS if self.page.get_by_text(marker).count() > 0]
        return shown + self.console_errors

    def screenshot(self, path, *, height: int | None = None) -> None:
        if height is not None:
            self.page.set_viewport_size({"width": self.page.viewport_size["width"], "height": height})
            self.page.wait_for_timeout(500)
        self.page.screenshot(path=str(path))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot the explorer app (served locally) in headless Chromium.")
    parser.add_argument("output", type=Path, help="PNG file to write, e.g. docs/explorer.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2040)
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK, help=f"the app (default: {NOTEBOOK})")
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with served(args.notebook) as url, chromium() as browser:
        app = AppPage(browser, url, width=args.width, height=args.height)
        app.page.wait_for_timeout(1000)
        errors = app.errors()
        if errors:
            print(f"samtheory.explorer.browser: the app shows errors: {errors}", file=sys.stderr)
            return 1
        app.screenshot(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
