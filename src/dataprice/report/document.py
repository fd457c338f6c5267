"""A tiny document model rendered to both Markdown and self-contained HTML."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dataprice.report.labels import labelled, name_of

#: Columns whose cells name a payment rule or a valuation method.
NAMED = ("rule", "method")


@dataclass
class Table:
    frame: pd.DataFrame
    caption: str = ""
    digits: int = 3


@dataclass
class Image:
    path: Path
    alt: str


@dataclass
class Code:
    text: str
    language: str = ""
    #: HTML: folded under this summary line (``<details>``), opened with a click
    collapsed: str | None = None


@dataclass
class Banner:
    """A notice that must be seen first (a smoke-test run): a framed box in HTML, a quote in
    Markdown."""

    text: str


@dataclass
class Bars:
    """A small horizontal bar chart of labelled amounts: an inline SVG in HTML (no image file,
    crisp in print), a two-column table in Markdown."""

    labels: list[str]
    values: list[float]
    caption: str = ""
    label_title: str = "k"
    value_title: str = "amount"

    def svg(self, width: int = 520, row: int = 12) -> str:
        """The chart: one bar per label from a zero line, negative bars to its left, the
        amount written at the end of each bar."""
        esc = html.escape
        finite = [v for v in self.values if np.isfinite(v)]
        low, high = min([0.0, *finite]), max([0.0, *finite])
        span = (high - low) or 1.0
        left, right = 34, 70  # room for the labels and the amounts
        scale = (width - left - right) / span
        zero = left + (0.0 - low) * scale
        height = row * len(self.values) + 4
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" role="img" width="{width}" height="{height}" '
               f'viewBox="0 0 {width} {height}" aria-label="{esc(self.caption or self.value_title)}">']
        for k, (name, value) in enumerate(zip(self.labels, self.values, strict=True)):
            y = 2 + k * row
            out.append(f'<text x="{left - 4}" y="{y + row - 4}" text-anchor="end" font-size="10">{esc(name)}</text>')
            if np.isfinite(value):
                x0, x1 = sorted((zero, zero + value * scale))
                fill = "#3b6ea5" if value >= 0 else "#b5523b"
                out.append(f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(x1 - x0, 0.5):.1f}" height="{row - 4}" fill="{fill}"/>')
                out.append(f'<text x="{max(x1, zero) + 3:.1f}" y="{y + row - 4}" font-size="10">{value:,.2f}</text>')
        out.append(f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{height}" stroke="#555" stroke-width="0.8"/>')
        out.append("</svg>")
        return "".join(out)


@dataclass
class Section:
    """A titled run of blocks. ``kind`` becomes the HTML ``<section>``'s class, which the
    print stylesheet keys on (``statement``: never split across pages, and each one after
    the first starts a new page). ``level`` is the heading level: 3 for sections grouped
    under the level-2 one before them (``h3`` / ``###``)."""

    title: str
    blocks: list = field(default_factory=list)  # str (paragraph) | Table | Image | Code
    kind: str = ""
    level: int = 2

    def __post_init__(self) -> None:
        if not 2 <= self.level <= 6:
            raise ValueError(f"section level {self.level}: 2 to 6 (level 1 is the document's title)")


def _whole(column: pd.Series) -> bool:
    """Whether a float column holds only whole numbers (counts), so it prints without decimals."""
    values = pd.to_numeric(column, errors="coerce") if column.dtype == object else column
    if not pd.api.types.is_float_dtype(values):
        return False
    finite = values[pd.notna(values) & (values.abs() < 1e15)]
    return len(finite) > 0 and len(finite) == int(values.notna().sum()) and bool((finite == finite.round()).all())


def _format_frame(frame: pd.DataFrame, digits: int) -> pd.DataFrame:
    """Cells as text: booleans yes/no, a column of whole numbers without decimals, other
    numbers with ``digits`` decimals and thousands separators, never ``-0`` (a negative
    number that rounds to zero prints as zero); columns under the labels a person reads
    (:func:`dataprice.report.labels.label`)."""

    def fmt(v, places):
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            if pd.isna(v):
                return ""
            if round(v, places) == 0:
                v = 0.0
            return f"{v:,.{places}f}"
        return str(v)

    out = frame.copy()
    for column in frame.columns:
        places = 0 if _whole(frame[column]) else digits
        out[column] = [fmt(v, places) for v in frame[column].tolist()]
        if column in NAMED:  # a rule or method as a person writes it (loo -> LOO)
            out[column] = [name_of(v) for v in out[column]]
    return labelled(out)


def to_markdown(title: str, intro: list, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    out += [f"> {p.text}\n" if isinstance(p, Banner) else p + "\n" for p in intro]
    for section in sections:
        out += [f"{'#' * section.level} {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += [block, ""]
            elif isinstance(block, Table):
                if block.caption:
                    out += [f"*{block.caption}*", ""]
                frame = _format_frame(block.frame, block.digits)
                out.append("| " + " | ".join(map(str, frame.columns)) + " |")
                out.append("|" + "|".join("---" for _ in frame.columns) + "|")
                for row in frame.itertuples(index=False):
                    out.append("| " + " | ".join(row) + " |")
                out.append("")
            elif isinstance(block, Image):
                out += [f"![{block.alt}]({block.path.name})", ""]
            elif isinstance(block, Bars):
                out += ([f"*{block.caption}*", ""] if block.caption else [])
                out += [f"| {block.label_title} | {block.value_title} |", "|---|---|"]
                out += [f"| {name} | {value:,.2f} |" for name, value in zip(block.labels, block.values, strict=True)]
                out.append("")
            elif isinstance(block, Code):
                out += [f"```{block.language}", block.text.rstrip(), "```", ""]
    return "\n".join(out)


#: Width of a table block's content, in CSS px: an A4 page is 794 px wide at 96 dpi, less
#: the print margins (12 mm a side, 45 px) and some slack for the estimate below.
PAGE_CONTENT_PX = 640.0
#: Estimated width of one character of a table cell (DejaVu Sans, Debian's system-ui font, at
#: .88em of 16 px: digits are .64 em), of a header character (bold), and a cell's padding
#: and border. Overestimates for narrower fonts, which is the safe side.
_CELL_CHAR_PX = 8.5
_HEAD_CHAR_PX = 9.5
_CELL_PAD_PX = 20.0
#: Cells longer than this many characters (prose, lists, paths: never a number) wrap, at
#: about this width; shorter ones stay on one line.
WRAP_CHARS = 40


def column_width(label: str, cells: list[str]) -> float:
    """Estimated narrowest rendering of a table column, in CSS px: its longest cell (one
    that wraps counts as :data:`WRAP_CHARS` wide), or the header's longest word, since
    headers wrap at spaces."""
    head = max((len(word) for word in label.split()), default=0) * _HEAD_CHAR_PX
    body = max((min(len(cell), WRAP_CHARS) for cell in cells), default=0) * _CELL_CHAR_PX
    return max(head, body) + _CELL_PAD_PX


def split_columns(frame: pd.DataFrame, width_px: float = PAGE_CONTENT_PX) -> list[list[int]]:
    """Positions of ``frame``'s columns (labelled and formatted cells) in the blocks a table
    is printed as, so each fits ``width_px``: every block starts with the key column 0,
    followed by the next columns in order, as many as fit (at least one). A frame that
    fits is one block; so is a frame of one column."""
    widths = [column_width(str(c), frame.iloc[:, k].tolist()) for k, c in enumerate(frame.columns)]
    if len(widths) <= 1:
        return [list(range(len(widths)))]
    blocks: list[list[int]] = []
    current: list[int] = []
    used = widths[0]
    for k in range(1, len(widths)):
        if current and used + widths[k] > width_px:
            blocks.append([0, *current])
            current, used = [], widths[0]
        current.append(k)
        used += widths[k]
    blocks.append([0, *current])
    return blocks


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
padding:0 1rem;color:#1d2330;line-height:1.45}
h1{border-bottom:2px solid #3b6ea5;padding-bottom:.3rem}h2{margin-top:2rem;color:#3b6ea5}h3{margin-top:1.4rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.88em;display:block;overflow-x:auto}
th,td{border:1px solid #d0d6e0;padding:.3rem .55rem;text-align:right;white-space:nowrap}
th{background:#eef2f8;white-space:normal;vertical-align:bottom;cursor:pointer}
td.wrap{white-space:normal;overflow-wrap:anywhere;min-width:16em;text-align:left}
td:first-child,th:first-child{text-align:left}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
caption{caption-side:top;text-align:left;font-style:italic;padding-bottom:.3rem}
img{max-width:100%;border:1px solid #e0e4ea;margin:.5rem 0}
pre{background:#f5f7fa;padding:.8rem;overflow-x:auto;font-size:.82rem;border-radius:4px}
figure.bars{margin:.4rem 0 .8rem}figure.bars figcaption{font-style:italic;font-size:.9em;margin-bottom:.2rem}
svg.bars{max-width:100%;height:auto}
.banner{border:2px solid #b8860b;background:#fff8e1;padding:.6rem .9rem;margin:1rem 0;font-weight:600}
@page{size:A4;margin:12mm}
@media print{
body{max-width:none;margin:0;padding:0;font-size:10pt}
section.statement{break-inside:avoid;font-size:9pt}section.alone{break-inside:auto}
section.statement p{margin:.3em 0}section.statement table{margin:.2rem 0 .4rem}
section.statement th,section.statement td{padding:.1rem .4rem}section.statement h3{margin:.6rem 0 .3rem}
.banner{padding:.3rem .6rem;margin:.5rem 0}section.statement~section.statement{break-before:page}
h2,h3,caption{break-after:avoid}table,img{break-inside:avoid}img{max-width:100%}
details,.no-print{display:none}th{cursor:auto}
}
"""

#: Click a header to sort its table's rows by that column, again to reverse: numerically when
#: every non-empty cell starts with a number (thousands separators dropped; an interval
#: "[1, 2]" sorts by its lower end; what follows the number, "± 0.1" or "(sd 2)", is ignored),
#: else as text; empty cells last.
_SORT_JS = r"""
const leading = t => { const m = t.replace(/,/g, '').replace(/^[[(]/, '').replace(/^\u2212/, '-').match(/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?/i);
  return m ? parseFloat(m[0]) : NaN; };
document.querySelectorAll('th').forEach(th => th.addEventListener('click', () => {
  const table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
  if (!body) return;
  const up = th.getAttribute('aria-sort') !== 'ascending';
  const rows = Array.from(body.rows, r => [r, r.cells[col] ? r.cells[col].textContent.trim() : '']);
  const numeric = rows.every(([, t]) => t === '' || !isNaN(leading(t)));
  const cmp = numeric ? (a, b) => leading(a) - leading(b) : (a, b) => a.localeCompare(b, undefined, {numeric: true});
  rows.sort(([, a], [, b]) => (a === '') - (b === '') || (a === '' ? 0 : (up ? 1 : -1) * cmp(a, b)));
  rows.forEach(([r]) => body.appendChild(r));
  table.querySelectorAll('th').forEach(h => h.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
}));
"""


def _html_tables(block: Table) -> list[str]:
    """``block`` as HTML tables that each fit an A4 page (:func:`split_columns`): the caption
    on the first, "(continued)" on the others."""
    esc = html.escape
    frame = _format_frame(block.frame, block.digits)
    body_rows = list(frame.itertuples(index=False))
    out = []
    for n, columns in enumerate(split_columns(frame)):
        caption = block.caption if n == 0 else f"{block.caption} (continued)".strip()
        cap = f"<caption>{esc(caption)}</caption>" if caption else ""
        head = "".join(f"<th>{esc(str(frame.columns[k]))}</th>" for k in columns)
        body = "".join("<tr>" + "".join(_cell(row[k]) for k in columns) + "</tr>" for row in body_rows)
        out.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return out


def _cell(text: str) -> str:
    """A ``<td>``; one longer than :data:`WRAP_CHARS` characters wraps (class ``wrap``)."""
    wrap = ' class="wrap"' if len(text) > WRAP_CHARS else ""
    return f"<td{wrap}>{html.escape(text)}</td>"


def unique_name(text: str, taken: set[str], *, keep: str = "a-z0-9", sep: str = "-", fallback: str = "section") -> str:
    """``text`` as a name of the characters ``keep`` (a regex class; ``a-z0-9`` also lower-cases
    it), every other run of characters one ``sep``, unique in ``taken`` compared without case
    (``-2``, ``-3``... on repeats), and added to it: a section's HTML ``id``, a statement's file."""
    source = text.lower() if keep == "a-z0-9" else text
    base = re.sub(f"[^{keep}]+", sep, source).strip(sep + ".") or fallback
    name, n = base, 1
    while name.lower() in taken:
        n += 1
        name = f"{base}{sep}{n}"
    taken.add(name.lower())
    return name


def to_html(title: str, intro: list, sections: list[Section]) -> str:
    """One self-contained HTML page: styles, images (base64) and the table-sorting script
    inline, nothing fetched. Wide tables are split into blocks that fit an A4 page."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    out += [f'<div class="banner" role="note">{_inline(p.text)}</div>' if isinstance(p, Banner)
            else f"<p>{_inline(p)}</p>" for p in intro]
    ids: set[str] = set()
    for section in sections:
        kind = f' class="{esc(section.kind)}"' if section.kind else ""
        out.append(f'<section{kind} id="{unique_name(section.title, ids)}">')
        out.append(f"<h{section.level}>{esc(section.title)}</h{section.level}>")
        for block in section.blocks:
            if isinstance(block, str):
                out.append(f"<p>{_inline(block)}</p>")
            elif isinstance(block, Table):
                out += _html_tables(block)
            elif isinstance(block, Image):
                data = base64.b64encode(block.path.read_bytes()).decode()
                out.append(f'<img alt="{esc(block.alt)}" src="data:image/png;base64,{data}">')
            elif isinstance(block, Code):
                code = f"<pre><code>{esc(block.text)}</code></pre>"
                out.append(f"<details><summary>{esc(block.collapsed)}</summary>{code}</details>"
                           if block.collapsed else code)
            elif isinstance(block, Bars):
                caption = f"<figcaption>{_inline(block.caption)}</figcaption>" if block.caption else ""
                out.append(f'<figure class="bars">{caption}{block.svg()}</figure>')
        out.append("</section>")
    out.append(f"<script>{_SORT_JS}</script>")
    out.append("</body></html>")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then render `code` spans and **bold** (the only Markdown used in paragraphs)."""
    parts = html.escape(text).split("`")
    for k in range(1, len(parts), 2):
        parts[k] = f"<code>{parts[k]}</code>"
    joined = "".join(parts)
    bold = joined.split("**")
    for k in range(1, len(bold), 2):
        bold[k] = f"<strong>{bold[k]}</strong>"
    return "".join(bold)
