"""Rules that remember: new terms, ES|QL STATS windows, EQL sequences, Sigma correlations.

A stateful rule has two halves, as a Kafka stream processor splits them. Its *per-event part* is
ordinary per-event rules (its selectors, in their own language, evaluated by the same families as
every other rule); an event that passes one becomes a :class:`Candidate` keyed by the rule's group
key. Its *stateful part* is an :class:`Operator`: a pure function from (the group's state, one
candidate) to (the new state, hits). The runtime decides where a key's candidates meet (in process
for ``scan``; a repartition topic and a changelogged store for ``run``).
"""

from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.operator import Operator, StatefulHit, Step
from auditstream.detections.stateful.rule import Selector, StatefulRule

__all__ = ["Candidate", "Operator", "Selector", "StatefulHit", "StatefulRule", "Step"]
