"""Registrations."""
