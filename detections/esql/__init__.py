"""ES|QL: the query language of auditstream's detection rules, evaluated per event."""
