"""Engines other than the embedded DuckDB store: the same Ibis expressions and Arrow functions at scale."""
