"""Helpers shared by the end-to-end tests (importable because tests/ is on sys.path)."""
