"""Compensation reports: tables (CSV, Parquet), plots, ``report.md`` and ``report.html``."""

from __future__ import annotations

from dataprice.report.writer import write_comparison, write_report

__all__ = ["write_comparison", "write_report"]
