"""Real infrastructure for tests and developers: a Kafka cluster and a Schema Registry.

Import from the submodules (`devtools.jvm.kafka`, `devtools.jvm.registry`). Nothing is
re-exported here on purpose: both submodules are also run with `python -m`, and a package that
imports them first makes runpy warn that the module is already in `sys.modules`.
"""
