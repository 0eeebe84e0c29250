"""Thin wrappers over confluent-kafka: configuration, clients, delivery, offsets, checkpoint."""
