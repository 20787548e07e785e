"""The analyst's report: one self-contained HTML page per scan."""

from distillguard.report.html import write_report

__all__ = ["write_report"]
