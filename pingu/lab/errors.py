"""Errors of the simulated network."""

from __future__ import annotations

from pingu.domain.errors import PinguError


class LabError(PinguError):
    """The lab could not build, change or read the simulated network."""
