"""Split an Elastic (ECS) document into its ``kubernetes.audit`` event and everything else.

Elastic Agent's ``kubernetes.audit_logs`` integration stores the audit event under
``kubernetes.audit``; depending on the shipper and on who re-exported the document, that subtree
arrives as nested objects, as flattened dotted keys (``"kubernetes.audit.requestURI"``), or as a
mix of both. Dots in annotation keys are replaced by ``_``
(``authorization_k8s_io/decision``). We rebuild one plain audit event object with the keys the API
server wrote, so that rules and alerts read every shape the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from auditstream.detections.event.field_path import restore_annotation_key, split_flattened

AUDIT_PREFIX: Final = "kubernetes.audit."


def is_ecs_document(obj: Mapping[str, Any]) -> bool:
    """True when ``obj`` holds a ``kubernetes.audit`` subtree in any spelling."""
    kubernetes = obj.get("kubernetes")
    if type(kubernetes) is dict and "audit" in kubernetes:
        return True
    if isinstance(kubernetes, Mapping) and any(
        k == "audit" or k.startswith("audit.") for k in kubernetes
    ):
        return True
    return any(k == "kubernetes.audit" or k.startswith(AUDIT_PREFIX) for k in obj)


def split_ecs(doc: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(audit_event, rest_of_document)``; the input is not modified.

    The common layout (one nested ``kubernetes.audit`` object, no dotted audit keys anywhere)
    is read in place: the event shares the input's nested objects instead of copying them.
    """
    nested = _nested_only(doc)
    if nested is not None:
        return nested
    audit: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "kubernetes" and isinstance(value, Mapping):
            kube_rest = _take_audit(value, audit)
            if kube_rest:
                rest[key] = kube_rest
        elif key == "kubernetes.audit" and isinstance(value, Mapping):
            _merge_top(audit, value)
        elif key.startswith(AUDIT_PREFIX):
            _set_path(audit, split_flattened(key[len(AUDIT_PREFIX) :]), value)
        else:
            rest[key] = value
    annotations = audit.get("annotations")
    if isinstance(annotations, Mapping):
        audit["annotations"] = {restore_annotation_key(k): v for k, v in annotations.items()}
    return audit, rest


def nested_audit(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``kubernetes.audit`` object of a document whose only audit spelling is
    ``{"kubernetes": {"audit": {...}}}`` with no dotted key directly under ``audit``; ``None``
    for any other layout. On this layout the event :func:`split_ecs` returns equals this object
    but for the spelling of annotation keys."""
    kubernetes = doc.get("kubernetes")
    if type(kubernetes) is not dict:
        return None
    source = kubernetes.get("audit")
    if type(source) is not dict:
        return None
    # Each scan of keys is screened on all of them joined (one C-level pass): a key that
    # starts with the text puts the text in the join, so its absence proves there is none.
    if "kubernetes.audit" in "".join(doc) and any(
        key == "kubernetes.audit" or key.startswith(AUDIT_PREFIX) for key in doc
    ):
        return None
    if len(kubernetes) > 1 and any(key.startswith("audit.") for key in kubernetes):
        return None
    if "." in "".join(source):
        return None
    return source


def _nested_only(doc: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The split of a :func:`nested_audit` layout; ``None`` for any other layout.

    Equal to the general merge, which on this layout only copies (JSON objects are dicts).
    """
    source = nested_audit(doc)
    if source is None:
        return None
    kubernetes = doc["kubernetes"]
    audit = dict(source)
    annotations = audit.get("annotations")
    if isinstance(annotations, Mapping):
        audit["annotations"] = {restore_annotation_key(k): v for k, v in annotations.items()}
    kube_rest = {key: value for key, value in kubernetes.items() if key != "audit"}
    rest: dict[str, Any] = {}
    for key, value in doc.items():
        if key != "kubernetes":
            rest[key] = value
        elif kube_rest:
            rest[key] = kube_rest
    return audit, rest


def _take_audit(kubernetes: Mapping[str, Any], audit: dict[str, Any]) -> dict[str, Any]:
    """Move ``audit`` / ``audit.*`` entries of a ``kubernetes`` object into ``audit``."""
    kube_rest: dict[str, Any] = {}
    for key, value in kubernetes.items():
        if key == "audit" and isinstance(value, Mapping):
            _merge_top(audit, value)
        elif key.startswith("audit."):
            _set_path(audit, split_flattened(key[len("audit.") :]), value)
        else:
            kube_rest[key] = value
    return kube_rest


def _merge_top(audit: dict[str, Any], source: Mapping[str, Any]) -> None:
    """Merge a nested ``kubernetes.audit`` object, expanding dotted keys at its top level only.

    ``"objectRef.resource"`` directly under ``kubernetes.audit`` is a flattened path; deeper down
    (``requestObject``, label and annotation maps) a dot is part of the key and is kept.
    """
    for key, value in source.items():
        _set_path(audit, split_flattened(key) if "." in key else [key], value)


def _set_path(target: dict[str, Any], segments: list[str], value: Any) -> None:
    node = target
    for segment in segments[:-1]:
        node = _own_child(node, segment)
    last = segments[-1]
    if isinstance(value, Mapping):
        _deep_merge(_own_child(node, last), value)
    else:
        node[last] = value


def _own_child(node: dict[str, Any], key: str) -> dict[str, Any]:
    """The child object at ``key``, copied first so that the caller's input is never mutated."""
    child = node.get(key)
    own = dict(child) if isinstance(child, Mapping) else {}
    node[key] = own
    return own


def _deep_merge(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), Mapping):
            _deep_merge(_own_child(target, key), value)
        else:
            target[key] = value
