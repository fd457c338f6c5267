"""Open a report in a real headless browser (Debian's Chromium through chromedriver).

:func:`check_report` loads ``report.html`` from disk and returns what a reader would hit:
console errors, images that did not render, resources fetched from outside the page
(the report must be self-contained), the section headings it found, the tables wider than
an A4 page and the number of per-seller statements. The test suite runs it on every
scenario's report; ``benchmarks``-style scripts use :func:`screenshot` for the README.
:func:`print_pdfs` prints pages to A4 PDFs as Chromium does, and :func:`pdf_pages` counts
a PDF's pages.

Needs ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (Debian packages ``chromium`` and
``chromium-driver``; ``make test`` installs them when it can) and the ``selenium`` package.
The driver path is given explicitly, so Selenium never tries to download a driver.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: An A4 page at 96 CSS px per inch (210 x 297 mm).
A4_PX = (794, 1123)


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
    #: tables wider than their container in a window as wide as an A4 page (scrolled
    #: sideways on screen, cut off on paper), each named by its caption or first header
    wide_tables: list[str] = field(default_factory=list)
    #: ``section.statement`` elements (per-seller statements, one printed page each)
    statements: int = 0

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
  statements: document.querySelectorAll('section.statement').length,
};
"""

_WIDE = """
return Array.from(document.querySelectorAll('table')).filter(t => t.scrollWidth > t.clientWidth)
    .map(t => (t.caption ? t.caption.textContent : (t.querySelector('th') || t).textContent).trim());
"""


def check_report(html: str | Path) -> PageCheck:
    """Load ``html`` headless and report console errors, broken images and external fetches,
    then lay it out at A4 width (:data:`A4_PX`, the viewport set exactly through Chromium's
    device metrics) and list the tables that do not fit."""
    path = Path(html).resolve()
    with _driver() as driver:
        driver.get(path.as_uri())
        found = driver.execute_script(_INSPECT)
        width, height = A4_PX
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        wide = driver.execute_script(_WIDE)
        logs = driver.get_log("browser")
    return PageCheck(
        title=found["title"],
        console_errors=[entry["message"] for entry in logs if entry.get("level") == "SEVERE"],
        broken_images=list(found["broken"]),
        external_resources=list(found["external"]) + list(found["remote_refs"]),
        headings=list(found["headings"]),
        tables=int(found["tables"]),
        images=int(found["images"]),
        wide_tables=list(wide),
        statements=int(found["statements"]),
    )


def print_pdfs(pages: list[tuple[Path, Path]]) -> list[Path]:
    """Print each ``(html, pdf)`` pair's page to ``pdf`` as Chromium prints it (A4, 1 cm
    margins unless the page's ``@page`` rule sets its own, backgrounds on; WebDriver's print
    has no header or footer), with one browser for all of them. Returns the PDF paths."""
    from selenium.webdriver.common.print_page_options import PrintOptions

    options = PrintOptions()
    options.page_width, options.page_height = 21.0, 29.7  # cm
    options.margin_top = options.margin_bottom = options.margin_left = options.margin_right = 1.0
    options.background = True
    written = []
    with _driver() as driver:
        for html, pdf in pages:
            driver.get(Path(html).resolve().as_uri())
            Path(pdf).write_bytes(base64.b64decode(driver.print_page(options)))
            written.append(Path(pdf))
    return written


def pdf_pages(path: str | Path) -> int:
    """Pages of a PDF: ``pdfinfo``'s count (Debian's ``poppler-utils``) when it is on the PATH,
    else the page objects (``/Type /Page``, not ``/Pages``) in the file's bytes, which is
    right for Chromium's PDFs (it does not pack objects into compressed streams)."""
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
        found = re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE)
        if found is None:
            raise ValueError(f"pdfinfo printed no page count for {path}")
        return int(found[1])
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", Path(path).read_bytes()))


def screenshot(html: str | Path, png: str | Path, *, width: int = 1200, height: int = 1500) -> Path:
    """Save a PNG of the top ``height`` pixels of the rendered report."""
    with _driver(width, height) as driver:
        driver.get(Path(html).resolve().as_uri())
        driver.save_screenshot(str(png))
    return Path(png)
