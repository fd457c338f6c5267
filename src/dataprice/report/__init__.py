"""Compensation reports: tables (CSV, Parquet), plots, ``report.md`` and ``report.html``."""

from __future__ import annotations

from dataprice.report.writer import write_report

__all__ = ["write_report"]
