"""Makes docs/view-demo.png: the built-in demo site (on free ports, its own broker), started and
charging, seen by the live page in headless Chromium after a minute of recorded history.

    .venv/bin/python -m tests.browser.demo_screenshot [OUT.png] [SECONDS]
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge.demo import render_demo_site
from edge.mosquitto import MosquittoProcess, free_port
from tests.browser.chromium import browser_page

EXE = str(Path(sys.executable).with_name("bess-edge"))


def cmd(site: Path, *args: str) -> None:
    out = subprocess.run([EXE, "cmd", *args, "-c", str(site)], capture_output=True, text=True)
    print(args[0], out.stdout.strip()[:200])


async def shoot(url: str, out: Path) -> None:
    async with browser_page() as page:
        await page.set_viewport_size({"width": 1280, "height": 1100})
        await page.goto(url)
        await page.wait_for_function("document.querySelector('#state').dataset.state")
        print("page shows", await page.get_attribute("#state", "data-state"))
        await asyncio.sleep(2.0)
        await page.screenshot(path=str(out), full_page=True)


def main(out: str = "docs/view-demo.png", seconds: float = 60.0) -> None:
    with tempfile.TemporaryDirectory() as d:
        broker = MosquittoProcess(workdir=Path(d) / "mq")
        broker.start()
        site = render_demo_site(Path(d) / "demo")
        text = site.read_text().replace("port = 1883", f"port = {broker.port}")
        for fixed in ("15020", "15021", "15022", "8443", "8080"):
            text = re.sub(rf"\bport = {fixed}\b", f"port = {free_port()}", text)
        site.write_text(text)
        view_port = int(re.findall(r"port = (\d+)", text.split("[view]")[1])[0])
        demo = subprocess.Popen([EXE, "demo", "--no-broker", "-c", str(site)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            time.sleep(6)
            cmd(site, "start")
            time.sleep(4)
            cmd(site, "charge", "30000")
            time.sleep(seconds / 2)
            cmd(site, "discharge", "20000")
            time.sleep(seconds / 2)
            asyncio.run(shoot(f"http://127.0.0.1:{view_port}", Path(out)))
            cmd(site, "stop")
        finally:
            demo.terminate()
            demo.wait(20)
            broker.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:2], *(float(a) for a in sys.argv[2:3]))
