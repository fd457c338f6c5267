"""Render a report in headless Chromium and save a PNG of its top (the README's picture).

    python scripts/screenshot_report.py reports/quickstart/report.html docs/report.png
"""

from __future__ import annotations

import argparse

from dataprice.report.browser import browser_available, check_report, screenshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html")
    parser.add_argument("png")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args()
    reason = browser_available()
    if reason:
        raise SystemExit(reason)
    page = check_report(args.html)
    if not page.ok:
        raise SystemExit(f"the report has problems: {page}")
    screenshot(args.html, args.png, width=args.width, height=args.height)
    print(f"{args.png}: {page.title}, {page.tables} tables, {page.images} images, no errors")


if __name__ == "__main__":
    main()
