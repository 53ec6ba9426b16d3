"""Shared fixtures for exporter tests (model builders live in helpers.py)."""

from tests.exporter.helpers import fused_export, fused_saved  # noqa: F401  (fixtures)
