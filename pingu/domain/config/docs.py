"""The settings table as documentation: rows of (key, default, unit, meaning, reload) for
each level, and those rows as the README's Markdown tables."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pingu.domain.config.explain import shown
from pingu.domain.config.settings import (
    PER_INTERFACE,
    REQUIRED,
    TOP_LEVEL,
    Inherited,
    Reload,
    Setting,
    Where,
)


@dataclass(frozen=True)
class Row:
    """One key as documented at one level."""

    key: str
    default: str  # Markdown, as the README writes it
    unit: str
    meaning: str
    reload: Reload


def top_level_rows() -> list[Row]:
    return [_row(setting) for setting in TOP_LEVEL]


def per_interface_rows() -> list[Row]:
    """A setting of both levels reads here as an interface's own (which then wins)."""
    return [
        _row(setting) if setting.per_interface is None else _own_row(setting, setting.per_interface)
        for setting in PER_INTERFACE
    ]


def _row(setting: Setting) -> Row:
    return Row(setting.key, _default_text(setting), setting.unit, setting.meaning, setting.reload)


def _own_row(setting: Setting, own: Inherited) -> Row:
    default = own.shown or f"top-level `{setting.key}`"
    return Row(setting.key, default, own.unit or setting.unit, own.meaning, setting.reload)


def _default_text(setting: Setting) -> str:
    if setting.shown:
        return setting.shown
    if setting.default is REQUIRED:
        if setting.where is Where.BOTH:
            return "required (unless every interface sets its own)"
        return "required"
    value = shown(setting, setting.default)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return f"`{json.dumps(value)}`"


def markdown_table(rows: list[Row]) -> str:
    """The README's table of `rows`: key, default, unit, meaning (one line each)."""
    lines = ["| key | default | unit | meaning |", "| --- | --- | --- | --- |"]
    for row in rows:
        cells = (f"`{row.key}`", row.default, row.unit, row.meaning)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
