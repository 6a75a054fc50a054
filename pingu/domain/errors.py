"""Errors the domain and the adapters raise, in the operator's words."""

from __future__ import annotations

from dataclasses import dataclass


class PinguError(Exception):
    """Base of every error pingu reports to the operator."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration: where, what value, which rule."""

    path: str
    value: object
    rule: str

    def __str__(self) -> str:
        return f"{shorten(self.path) or '<top>'}: {shorten(repr(self.value))}: {self.rule}"


def shorten(text: str, limit: int = 120) -> str:
    """`text`, or its first `limit` characters and its length: a problem repeats what the
    file said, and that can be a megabyte long."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class ConfigError(PinguError):
    """A configuration was rejected; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem] | tuple[ConfigProblem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
