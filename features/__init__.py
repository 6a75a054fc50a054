"""Gherkin specs of pingu's failover behaviour, bound to the core with pytest-bdd."""
