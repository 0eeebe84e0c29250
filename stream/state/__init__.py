"""Stateful rules in the service: the repartition hop, the local stores and their changelogs."""
