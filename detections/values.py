"""The value model of ES|QL columns as auditstream evaluates them.

ES|QL columns are typed and may be multi-valued. A field that holds a JSON array of more than one
element is a multi-value (a tuple here); a one-element array is a single value; an empty array or
a missing field is null (``None``).
"""

from __future__ import annotations

Scalar = str | int | float | bool
Value = Scalar | tuple[Scalar, ...] | None
