"""Open a page in the system's headless Chromium and watch it through the DevTools protocol.

Why this and not a driver package: Playwright and pyppeteer download their own browser builds,
which cannot be fetched here (and CI installs Debian's ``chromium`` with apt instead). Chromium's
``--remote-debugging-pipe`` speaks the DevTools protocol over two file descriptors (3: commands
in, 4: replies and events out; JSON messages ending in NUL), so no port is opened and no client
library is needed. ``--dump-dom``/``--screenshot`` alone would not show console messages, network
requests or element sizes.

``open_page(path)`` loads a file and returns a ``PageVisit``: every console message and exception,
every network request, the laid-out size of the page's plots and images, the numbers tagged with
``data-path``, and a full-page PNG screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VIEWPORT = (1280, 800)  # a laptop screen, CSS pixels
TIMEOUT_S = 60.0

# what the page shows, read in the page after it loaded
_INSPECT = """(() => {
  const box = el => { const r = el.getBoundingClientRect(); return {width: r.width, height: r.height}; };
  return JSON.stringify({
    plots: [...document.querySelectorAll('svg')].map(s => ({...box(s), cls: s.getAttribute('class') || ''})),
    images: [...document.querySelectorAll('img')].map(i => ({...box(i), natural_width: i.naturalWidth,
             natural_height: i.naturalHeight, complete: i.complete, scheme: i.src.split(':')[0],
             alt: i.alt})),
    numbers: [...document.querySelectorAll('[data-path]')].map(e => ({doc: e.dataset.doc, path: e.dataset.path,
              value: e.dataset.value, text: e.textContent})),
    text: document.body.innerText,
    height: Math.ceil(document.documentElement.scrollHeight),
    width: Math.ceil(document.documentElement.scrollWidth),
  });
})()"""


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM``, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@dataclass
class PageVisit:
    url: str
    console: list[dict] = field(default_factory=list)  # console API calls, exceptions, browser log entries
    requests: list[str] = field(default_factory=list)  # URLs of every request the page made
    page: dict[str, Any] = field(default_factory=dict)  # what _INSPECT found
    screenshot: bytes = b""

    @property
    def errors(self) -> list[dict]:
        return [c for c in self.console if c.get("level") in ("error", "warning")]

    def foreign_requests(self) -> list[str]:
        """Requests other than the page itself and data: URLs (i.e. network access)."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]


class _Pipe:
    """The DevTools protocol over Chromium's pipe: numbered commands, events collected on the way."""

    def __init__(self, executable: str, profile: str, log: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def child_fds() -> None:  # in the child: the two pipe ends become fds 3 and 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [executable, "--headless", "--remote-debugging-pipe", f"--user-data-dir={profile}", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--mute-audio", "--force-device-scale-factor=1",
                # a request that does slip out fails at once instead of reaching anything (it is still seen)
                "--host-resolver-rules=MAP * ~NOTFOUND", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self._log = open(log, "wb")
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                        preexec_fn=child_fds, close_fds=False)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._replies: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                self._replies.put(None)
                return
            buf += chunk
            while b"\0" in buf:
                message, buf = buf.split(b"\0", 1)
                self._replies.put(json.loads(message))

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next += 1
        command = {"id": self._next, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        os.write(self._to_chrome, json.dumps(command).encode() + b"\0")
        return self.wait(lambda m: m.get("id") == self._next, f"reply to {method}")

    def wait(self, match, what: str) -> dict:
        deadline = time.monotonic() + TIMEOUT_S
        for event in self.events:
            if match(event):
                return event
        while True:
            try:
                message = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"chromium: no {what} within {TIMEOUT_S:.0f} s") from None
            if message is None:
                raise RuntimeError(f"chromium exited while waiting for {what}")
            if "id" in message:
                if "error" in message:
                    raise RuntimeError(f"chromium: {what}: {message['error']}")
                if match(message):
                    return message.get("result", {})
                continue
            self.events.append(message)
            if match(message):
                return message

    def close(self) -> None:
        try:
            os.write(self._to_chrome, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.process.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._to_chrome)
            self._log.close()


def open_page(path: str | Path, executable: str, log: Path) -> PageVisit:
    """Load ``path`` in a fresh headless Chromium at a laptop's viewport and record what happened."""
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        pipe = _Pipe(executable, profile, log)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                pipe.send(f"{domain}.enable", session=session)
            width, height = VIEWPORT
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
            pipe.send("Page.navigate", {"url": url}, session=session)
            pipe.wait(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session, "page load")
            result = pipe.send("Runtime.evaluate", {"expression": _INSPECT, "returnByValue": True}, session=session)
            page = json.loads(result["result"]["value"])
            shot = pipe.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": max(width, page["width"]), "height": page["height"], "scale": 1}},
                session=session)
            visit = PageVisit(url=url, page=page, screenshot=base64.b64decode(shot["data"]))
            for event in pipe.events:
                if event.get("sessionId") != session:
                    continue
                method, params = event.get("method"), event.get("params", {})
                if method == "Network.requestWillBeSent":
                    visit.requests.append(params["request"]["url"])
                elif method == "Runtime.consoleAPICalled":
                    level = {"assert": "error", "warning": "warning", "error": "error"}.get(params.get("type"), "info")
                    visit.console.append({"level": level, "text": " ".join(str(a.get("value", a.get("description")))
                                                                            for a in params.get("args", []))})
                elif method == "Runtime.exceptionThrown":
                    visit.console.append({"level": "error", "text": params["exceptionDetails"].get("text", "")})
                elif method == "Log.entryAdded":
                    entry = params["entry"]
                    visit.console.append({"level": entry.get("level"), "text": entry.get("text"), "url": entry.get("url")})
            return visit
        finally:
            pipe.close()
