"""Kafka plumbing: producer, transactional outbox, inbox + batch processing, dead letters, broker factory."""
