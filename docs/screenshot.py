"""Screenshot a running dashboard with Debian's Chromium (headless, via Playwright).

    .venv/bin/python docs/screenshot.py URL SECRET [PAGE] [OUT]

e.g. while ``mailroom demo`` runs: ``docs/screenshot.py http://127.0.0.1:18080/ SECRET /emails
docs/dashboard.png``. Used to make the README's screenshot; no test depends on it.
"""

from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(url: str, secret: str, path: str = "/", out: str = "docs/dashboard.png") -> None:
    base = url.rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(base + "/login")
        page.fill("#secret", secret)
        page.click("button[type=submit]")
        page.goto(base + path)
        page.screenshot(path=out, full_page=False)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
