"""The registry: member organisations, countries and their income groups."""
