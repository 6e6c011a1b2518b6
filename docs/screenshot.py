"""Screenshot a running dashboard with Debian's Chromium (headless, via Playwright).

    MAILROOM_WEB_PASSWORD=... .venv/bin/python docs/screenshot.py URL ACCOUNT [PAGE] [OUT]

e.g. while ``mailroom demo`` runs (it prints the demo account's password):
``docs/screenshot.py http://127.0.0.1:18080/ demo /emails docs/dashboard.png``. The password
comes from the environment, never the command line. Used to make the README's screenshot; no
test depends on it.
"""

from __future__ import annotations

import os
import sys

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(url: str, account: str, path: str = "/", out: str = "docs/dashboard.png") -> None:
    base = url.rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(base + "/login")
        page.fill("#account", account)
        page.fill("#password", os.environ["MAILROOM_WEB_PASSWORD"])
        page.click("button[type=submit]")
        page.goto(base + path)
        page.screenshot(path=out, full_page=False)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
