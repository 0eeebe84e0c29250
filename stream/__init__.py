"""The auditstream runtime: offline scan, the Kafka service, and their command line."""
