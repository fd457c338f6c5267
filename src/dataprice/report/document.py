"""A tiny document model rendered to both Markdown and self-contained HTML."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dataprice.report.labels import labelled


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
class Section:
    title: str
    blocks: list = field(default_factory=list)  # str (paragraph) | Table | Image | Code


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
    return labelled(out)


def to_markdown(title: str, intro: list, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    out += [f"> {p.text}\n" if isinstance(p, Banner) else p + "\n" for p in intro]
    for section in sections:
        out += [f"## {section.title}", ""]
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
            elif isinstance(block, Code):
                out += [f"```{block.language}", block.text.rstrip(), "```", ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
padding:0 1rem;color:#1d2330;line-height:1.45}
h1{border-bottom:2px solid #3b6ea5;padding-bottom:.3rem}h2{margin-top:2rem;color:#3b6ea5}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.88rem;display:block;overflow-x:auto}
th,td{border:1px solid #d0d6e0;padding:.3rem .55rem;text-align:right;white-space:nowrap}
th{background:#eef2f8}td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-style:italic;padding-bottom:.3rem}
img{max-width:100%;border:1px solid #e0e4ea;margin:.5rem 0}
pre{background:#f5f7fa;padding:.8rem;overflow-x:auto;font-size:.82rem;border-radius:4px}
.banner{border:2px solid #b8860b;background:#fff8e1;padding:.6rem .9rem;margin:1rem 0;font-weight:600}
"""


def to_html(title: str, intro: list, sections: list[Section]) -> str:
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
    for section in sections:
        out.append(f"<h2>{esc(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, str):
                out.append(f"<p>{_inline(block)}</p>")
            elif isinstance(block, Table):
                frame = _format_frame(block.frame, block.digits)
                cap = f"<caption>{esc(block.caption)}</caption>" if block.caption else ""
                head = "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns)
                body = "".join(
                    "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                    for row in frame.itertuples(index=False)
                )
                out.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(block, Image):
                data = base64.b64encode(block.path.read_bytes()).decode()
                out.append(f'<img alt="{esc(block.alt)}" src="data:image/png;base64,{data}">')
            elif isinstance(block, Code):
                code = f"<pre><code>{esc(block.text)}</code></pre>"
                out.append(f"<details><summary>{esc(block.collapsed)}</summary>{code}</details>"
                           if block.collapsed else code)
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
