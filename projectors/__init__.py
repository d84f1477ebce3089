"""Projectors: pure folds from journal records to read models.

Each projector is a function of (current view, journal record) -> new view, so the same code
runs in the live projector agent and in ``omninode projections rebuild``, which folds the
journal from offset 0. Records at or below a view's seq are skipped, which makes every fold
idempotent under redelivery.
"""
