"""OmniNode Workflows: an event-sourced, Kafka-native workflow orchestrator.

Layers (enforced by import-linter): ``app.cli`` -> ``app.infra`` -> ``app.core`` -> ``app.spi``.
"""
