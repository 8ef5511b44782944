"""JSON from outside (request bodies, model cards) parsed with a nesting limit.

Deep nesting overflows the stack, in the parser (RecursionError) or later in
whatever walks the value (validation, repr, jsonify); a limit refuses it up front.
"""
from __future__ import annotations

import json
from typing import Any


def depth(value: Any) -> int:
    """Nesting depth of lists and objects (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def loads(text: str | bytes, max_depth: int) -> Any:
    """json.loads, raising ValueError (never RecursionError) for malformed text or nesting past max_depth."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
    else:
        if depth(value) <= max_depth:
            return value
    raise ValueError(f"nested deeper than {max_depth} levels")
