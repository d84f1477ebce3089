"""Baseline applications the benchmark measures OmniNode against, on the same broker."""
