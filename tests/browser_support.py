"""Open a local HTML file in headless Chromium with networking disabled, over the DevTools protocol.

`open_page(path, tmp_path)` starts Debian's `chromium` with a fresh profile, every host name
unresolvable, a dead proxy for every URL and the DevTools network emulation set to offline; it
loads the file and returns what a test asserts on: console errors and exceptions (CSP violations
included), every network request other than the file itself, the page's text, each
`svg.chart`'s drawn bars and size, and a full-page screenshot written into tmp_path.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import in_ci

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
    # Networking off: no host name resolves, and every http(s) URL goes to a proxy that is not there.
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--window-size=1280,900", "--remote-debugging-port=0", "--remote-allow-origins=*",
)

# What the page reports about itself once loaded (evaluated in the page).
_INSPECT = """JSON.stringify({
  text: document.body ? document.body.innerText : "",
  title: document.title,
  charts: Array.from(document.querySelectorAll("svg.chart")).map(s => {
    const box = s.getBoundingClientRect();
    const bars = Array.from(s.querySelectorAll(".bar")).filter(b => { const r = b.getBBox(); return r.width > 0 && r.height > 0; });
    return {label: s.getAttribute("aria-label"), width: box.width, height: box.height, bars: bars.length};
  }),
  scripts: document.scripts.length,
})"""


def chromium_path() -> str:
    """The chromium binary; fails under CI (.ci/run installs it), skips elsewhere."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found is None:
        message = "chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class PageVisit:
    url: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every request but the page itself
    text: str = ""
    title: str = ""
    charts: list[dict] = field(default_factory=list)
    scripts: int = 0
    screenshot: Path | None = None


class _DevTools:
    """A minimal DevTools protocol client over one browser websocket (flattened target sessions)."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=10)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 20) -> dict:
        msg_id = next(self.ids)
        message = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 20) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            self.events.append(event)
            if event.get("method") == method:
                return event

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within `seconds` (late console messages, requests)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                return

    def close(self) -> None:
        self.ws.close()


def open_page(path: Path, tmp_path: Path, *, screenshot: str = "page.png") -> PageVisit:
    binary = chromium_path()
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path))  # fresh for every visit
    proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start its DevTools endpoint (exit {proc.poll()})")
            time.sleep(0.05)
        port, ws_path = port_file.read_text().splitlines()[:2]
        return _visit(_DevTools(f"ws://127.0.0.1:{port}{ws_path}"), path, tmp_path / screenshot)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _visit(cdp: _DevTools, path: Path, shot: Path) -> PageVisit:
    url = path.resolve().as_uri()
    visit = PageVisit(url=url)
    try:
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            cdp.send(method, session=session)
        cdp.send("Network.emulateNetworkConditions",
                 {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}, session=session)
        cdp.events.clear()
        cdp.send("Page.navigate", {"url": url}, session=session)
        cdp.wait_for("Page.loadEventFired")
        cdp.drain(0.5)
        result = cdp.send("Runtime.evaluate", {"expression": _INSPECT, "returnByValue": True}, session=session)
        seen = json.loads(result["result"]["value"])
        visit.text, visit.title, visit.charts, visit.scripts = seen["text"], seen["title"], seen["charts"], seen["scripts"]
        metrics = cdp.send("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 12000), "scale": 1}
        png = cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip},
                       session=session, timeout=60)["data"]
        shot.write_bytes(base64.b64decode(png))
        visit.screenshot = shot
        cdp.drain(0.2)
    finally:
        cdp.close()
    for event in cdp.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent" and params.get("request", {}).get("url") != url:
            visit.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            visit.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            visit.console_errors.append(params.get("exceptionDetails", {}).get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            visit.console_errors.append(params["entry"].get("text", ""))
    return visit
