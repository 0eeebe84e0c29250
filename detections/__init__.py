"""Detection rules for Kubernetes audit events: the ES|QL engine, native rules, alerts."""
