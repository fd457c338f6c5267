"""Open a report in a real headless browser (Debian's Chromium through chromedriver).

:func:`check_report` loads ``report.html`` from disk and returns what a reader would hit:
console errors, images that did not render, resources fetched from outside the page
(the report must be self-contained) and the section headings it found. The test suite
runs it on every scenario's report; ``benchmarks``-style scripts use :func:`screenshot`
for the README.

Needs ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (Debian packages ``chromium`` and
``chromium-driver``; ``make test`` installs them when it can) and the ``selenium`` package.
The driver path is given explicitly, so Selenium never tries to download a driver.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_available() -> str | None:
    """None when a headless check can run, else why not (one line)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and shutil.which(Path(path).name) is None:
            return f"{path} not found: install Debian's chromium and chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install selenium"
    return None


@dataclass
class PageCheck:
    """What loading a report showed."""

    title: str
    console_errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    external_resources: list[str] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    tables: int = 0
    images: int = 0

    @property
    def ok(self) -> bool:
        return not (self.console_errors or self.broken_images or self.external_resources)


@contextmanager
def _driver(width: int = 1280, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


_INSPECT = """
const imgs = Array.from(document.images);
return {
  title: document.title,
  broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 40)),
  external: performance.getEntriesByType('resource').map(r => r.name)
      .filter(n => !n.startsWith('data:') && !n.startsWith('file:')),
  remote_refs: Array.from(document.querySelectorAll('[src],[href]'))
      .map(e => e.getAttribute('src') || e.getAttribute('href'))
      .filter(u => /^(https?:)?\\/\\//.test(u)),
  headings: Array.from(document.querySelectorAll('h1,h2')).map(h => h.textContent.trim()),
  tables: document.querySelectorAll('table').length,
  images: imgs.length,
};
"""


def check_report(html: str | Path) -> PageCheck:
    """Load ``html`` headless and report console errors, broken images and external fetches."""
    path = Path(html).resolve()
    with _driver() as driver:
        driver.get(path.as_uri())
        found = driver.execute_script(_INSPECT)
        logs = driver.get_log("browser")
    return PageCheck(
        title=found["title"],
        console_errors=[entry["message"] for entry in logs if entry.get("level") == "SEVERE"],
        broken_images=list(found["broken"]),
        external_resources=list(found["external"]) + list(found["remote_refs"]),
        headings=list(found["headings"]),
        tables=int(found["tables"]),
        images=int(found["images"]),
    )


def screenshot(html: str | Path, png: str | Path, *, width: int = 1200, height: int = 1500) -> Path:
    """Save a PNG of the top ``height`` pixels of the rendered report."""
    with _driver(width, height) as driver:
        driver.get(Path(html).resolve().as_uri())
        driver.save_screenshot(str(png))
    return Path(png)
