"""Golden journals of the example charts (see generate.py)."""
