"""Adapters to the outside world: chart files, handler modules (and, next, Kafka/Faust/Avro)."""
