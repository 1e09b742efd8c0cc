"""Accounting: CDR records and their sinks (billing and RADIUS join here)."""
