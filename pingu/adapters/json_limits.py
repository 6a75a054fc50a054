"""JSON from outside pingu's control, parsed within limits that say where they were broken.

Python's json module recurses once per nesting level (a RecursionError past about a
thousand) and refuses integers of more than 4,300 digits with a bare ValueError: either
would escape as a traceback from `check-config`, kill a reload, or stop the daemon at
start-up on a corrupt state file. pingu's documents are small and shallow, so a scan
before parsing refuses deep nesting and long numbers, with the position of the first
offence; the scan costs a few regular-expression passes, whatever the text holds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

MAX_NUMBER_DIGITS = 100  # no setting needs more; Python refuses integers past 4,300 digits

# A JSON string as the comment stripper sees one: it ends at its closing quote or at the
# end of its line (raw newlines are not allowed in JSON strings).
_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_LONG_NUMBER = re.compile(rf"[0-9]{{{MAX_NUMBER_DIGITS + 1},}}")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonLimitError(ValueError):
    """A document past one of the limits; `pos` is where in the text (like JSONDecodeError)."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        self.msg = message
        self.pos = pos
        self.lineno = text.count("\n", 0, pos) + 1
        self.colno = pos - text.rfind("\n", 0, pos)
        super().__init__(f"{message}: line {self.lineno} column {self.colno} (char {pos})")


def check_limits(text: str, max_depth: int) -> None:
    """Raise JsonLimitError when `text` nests deeper than `max_depth` or holds a number of
    more than MAX_NUMBER_DIGITS digits (outside strings)."""
    skeleton = _STRING.sub(lambda match: " " * len(match.group()), text)
    brackets = _NOT_BRACKET.sub("", skeleton)
    if brackets and max(accumulate(map(_DEPTH_STEP.__getitem__, brackets))) > max_depth:
        raise JsonLimitError(
            f"nested more than {max_depth} levels deep", text, _too_deep_at(skeleton, max_depth)
        )
    number = _LONG_NUMBER.search(skeleton)
    if number is not None:
        end = number.end()
        while end < len(skeleton) and skeleton[end].isdigit():
            end += 1
        raise JsonLimitError(
            f"a number of {end - number.start()} digits (at most {MAX_NUMBER_DIGITS})",
            text,
            number.start(),
        )


def _too_deep_at(skeleton: str, max_depth: int) -> int:
    depth = 0
    for match in re.finditer(r"[\[\]{}]", skeleton):
        depth += _DEPTH_STEP[match.group()]
        if depth > max_depth:
            return match.start()
    return 0


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text[:20]} is too large a number")
    return number


def loads(
    text: str,
    *,
    max_depth: int,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], object] | None = None,
    allow_constants: bool = True,
) -> Any:
    """json.loads within the limits: JSONDecodeError for bad syntax, JsonLimitError (both
    ValueErrors) past a limit; NaN, Infinity and numbers too large for a float (1e999)
    refused unless `allow_constants`."""
    check_limits(text, max_depth)
    hooks: dict[str, Any] = {}
    if object_pairs_hook is not None:
        hooks["object_pairs_hook"] = object_pairs_hook
    if not allow_constants:
        hooks["parse_constant"] = _no_constants
        hooks["parse_float"] = _finite
    try:
        return json.loads(text, **hooks)
    except RecursionError:  # the scan makes this unreachable; never a traceback if not
        raise JsonLimitError(f"nested more than {max_depth} levels deep", text, 0) from None
