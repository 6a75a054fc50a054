"""Binds every feature file beside this module; the steps live in conftest.py."""

from pytest_bdd import scenarios

scenarios(".")
