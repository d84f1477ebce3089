"""The pure domain: RSS loader and validator, statechart interpreter, replay, simulator.

No Kafka, no clock, no I/O, no randomness (enforced by import-linter contracts).
"""
