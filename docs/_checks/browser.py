"""Check the built documentation site in headless Chromium (``make docs`` runs it).

Every page of ``build/docs`` is served on localhost and opened in Chromium at a
1280 × 900 window; the check fails if a page

- logs an error to the console, throws, or fails to load a resource;
- scrolls sideways: the page itself, or a paragraph, list item, heading or table
  cell wider than its box (code blocks may scroll, except on the pages of
  :data:`NO_CODE_SCROLL`, whose code lines must wrap);
- has a formula that MathJax could not typeset.

Chromium is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``), so the check needs only the Python standard library
and the Debian packages ``chromium`` (``apt-get install chromium``). Without
Chromium the check is skipped with a message, unless ``CI`` is set, where it fails.
``--screenshots DIR`` saves a screenshot of each page there (keep them out of the
repository; the default is to save none).

Run: ``python docs/_checks/browser.py build/docs [--screenshots /tmp/shots]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WIDTH, HEIGHT = 1280, 900
"""The browser window."""

NO_CODE_SCROLL = ("index.html", "getting-started/index.html")
"""Pages whose code blocks must fit without scrolling (wrapped)."""

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
    f"--window-size={WIDTH},{HEIGHT}",
)
"""Chromium's flags: headless, and no connections of its own (the machine has none)."""

PAGE_TIMEOUT_S = 30.0

MEASURE = """
(() => {
  const wide = (el) => el.scrollWidth > el.clientWidth + 1;
  const name = (el) => el.tagName.toLowerCase() + ": " +
      (el.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 60);
  const root = document.scrollingElement;
  const prose = [...document.querySelectorAll(
      ".md-content p, .md-content li, .md-content h1, .md-content h2, " +
      ".md-content h3, .md-content td, .md-content th")];
  const code = [...document.querySelectorAll(".md-content pre > code")];
  return {
    page: root.scrollWidth > root.clientWidth + 1 ? root.scrollWidth : 0,
    prose: prose.filter(wide).map(name),
    code: code.filter(wide).map(name),
    formulas: document.querySelectorAll(".arithmatex").length,
    typeset: document.querySelectorAll(".arithmatex mjx-container").length,
    merrors: [...document.querySelectorAll("mjx-merror")].map(name),
  };
})()
"""
"""What a page shows: sideways scrolling, and the state of its formulas."""

MATHJAX_READY = """
new Promise((resolve) => {
  if (!document.querySelector(".arithmatex")) { resolve(true); return; }
  const start = Date.now();
  const poll = () => {
    const ready = window.MathJax && MathJax.startup && MathJax.startup.promise;
    if (ready) { MathJax.startup.promise.then(() => resolve(true)); return; }
    if (Date.now() - start > 20000) { resolve(false); return; }
    setTimeout(poll, 50);
  };
  poll();
})
"""
"""Resolves once MathJax has typeset the page (or at once without formulas)."""


class DevTools:
    """A Chromium process driven over ``--remote-debugging-pipe``.

    Messages are JSON, each followed by a NUL byte: Chromium reads them from its
    file descriptor 3 and writes to its descriptor 4.

    Args:
        chromium: Path of the Chromium binary.
        profile: An empty directory for Chromium's profile.
    """

    def __init__(self, chromium: str, profile: str):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def descriptors() -> None:  # in the child, before exec
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=descriptors,
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        """Call a protocol method and wait for its result.

        Args:
            method: E.g. ``"Page.navigate"``.
            session: The target session, or ``None`` for the browser.
            **params: The method's parameters.

        Returns:
            The ``result`` of the reply.

        Raises:
            RuntimeError: If the method failed.
        """
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method}
        message["params"] = params
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(PAGE_TIMEOUT_S)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    msg = f"{method} failed: {reply['error']}"
                    raise RuntimeError(msg)
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float) -> dict[str, Any] | None:
        """Wait for an event (kept with the others); ``None`` after ``timeout``.

        Args:
            method: The event, e.g. ``"Page.loadEventFired"``.
            timeout: Seconds to wait.

        Returns:
            The event, or ``None``.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method and not event.get("_seen"):
                    event["_seen"] = True
                    return event
            try:
                self.events.append(self._receive(deadline - time.monotonic()))
            except TimeoutError:
                return None
        return None

    def _receive(self, timeout: float) -> dict[str, Any]:
        import select

        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(0.0, left))
            if not ready:
                msg = "Chromium did not answer"
                raise TimeoutError(msg)
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                msg = "Chromium closed the connection"
                raise RuntimeError(msg)
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def close(self) -> None:
        """End Chromium."""
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@contextlib.contextmanager
def served(site: Path) -> Iterator[str]:
    """Serve ``site`` on a free localhost port; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def pages(site: Path) -> list[str]:
    """The site's pages, as paths relative to its root (``index.html`` style)."""
    found = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html"))
    return [p for p in found if not p.startswith("assets/")]


def errors_of(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, exceptions and failed loads among the protocol events."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get(
                "text", "exception"
            )
            found.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = " ".join(
                str(a.get("value", a.get("description", ""))) for a in params["args"]
            )
            found.append(f"console.error: {args}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            found.append(
                f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}"
            )
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            found.append(f"load failed: {params.get('errorText')}")
    return found


def check_page(tools: DevTools, session: str, url: str, page: str) -> list[str]:
    """Open one page and list what is wrong with it."""
    tools.events.clear()
    tools.send("Page.navigate", session, url=url)
    if tools.wait_for("Page.loadEventFired", PAGE_TIMEOUT_S) is None:
        return [f"did not load within {PAGE_TIMEOUT_S:.0f} s"]
    ready = tools.send(
        "Runtime.evaluate",
        session,
        expression=MATHJAX_READY,
        awaitPromise=True,
        returnByValue=True,
    )
    shown = tools.send(
        "Runtime.evaluate", session, expression=MEASURE, returnByValue=True
    )["result"]["value"]
    problems = errors_of(tools.events)
    if shown["page"]:
        problems.append(f"the page scrolls sideways: {shown['page']} px wide")
    problems += [f"prose wider than its box: {text}" for text in shown["prose"]]
    if page in NO_CODE_SCROLL:
        problems += [f"code scrolls sideways: {text}" for text in shown["code"]]
    if not ready["result"].get("value"):
        problems.append("MathJax did not finish typesetting")
    if shown["typeset"] < shown["formulas"]:
        untypeset = shown["formulas"] - shown["typeset"]
        problems.append(f"{untypeset} of {shown['formulas']} formulas not typeset")
    problems += [f"formula error: {text}" for text in shown["merrors"]]
    return problems


def screenshot(tools: DevTools, session: str, folder: Path, page: str) -> None:
    """Save the whole page (beyond the window) as a PNG in ``folder``."""
    size = tools.send("Page.getLayoutMetrics", session)["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": WIDTH, "height": size["height"], "scale": 1}
    data = tools.send(
        "Page.captureScreenshot",
        session,
        format="png",
        clip=clip,
        captureBeyondViewport=True,
    )["data"]
    name = page.removesuffix("index.html").strip("/").replace("/", "-") or "home"
    (folder / f"{name}.png").write_bytes(base64.b64decode(data))


def run(site: Path, chromium: str, shots: Path | None) -> int:
    """Check every page of ``site``; print the problems; 0 if there are none."""
    failed = 0
    with tempfile.TemporaryDirectory() as profile, served(site) as base:
        tools = DevTools(chromium, profile)
        try:
            target = tools.send("Target.createTarget", url="about:blank")["targetId"]
            session = tools.send(
                "Target.attachToTarget", targetId=target, flatten=True
            )["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                tools.send(f"{domain}.enable", session)
            tools.send(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
            for page in pages(site):
                problems = check_page(tools, session, base + page, page)
                if shots is not None:
                    screenshot(tools, session, shots, page)
                status = "ok" if not problems else f"{len(problems)} problems"
                print(f"{page}: {status}")
                for problem in problems:
                    print(f"    {problem}")
                failed += bool(problems)
        finally:
            tools.close()
    total = len(pages(site))
    print(f"{total - failed} passed, {failed} failed (pages at {WIDTH} px, Chromium)")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Command line: the site folder, and optionally a folder for screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built site, e.g. build/docs")
    parser.add_argument("--screenshots", type=Path, help="save screenshots here")
    args = parser.parse_args(argv)
    chromium = next(
        (
            found
            for name in ("chromium", "chromium-browser", "google-chrome")
            if (found := shutil.which(name))
        ),
        None,
    )
    if chromium is None:
        msg = "docs browser check: Chromium not found (apt-get install chromium)"
        if os.environ.get("CI"):
            print(f"{msg}; CI requires it.", file=sys.stderr)
            return 1
        print(f"{msg}; skipped.", file=sys.stderr)
        return 0
    if not (args.site / "index.html").is_file():
        print(f"{args.site} has no index.html: build the site first (mkdocs build).")
        return 1
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    return run(args.site, chromium, args.screenshots)


if __name__ == "__main__":
    sys.exit(main())
