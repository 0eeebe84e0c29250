"""The Elastic view of an audit event: the document Elastic's Kubernetes integration indexes,
and its field values as Elasticsearch sees them (what KQL, EQL and ``KQL()`` rules read)."""
