"""Editions: the editions themselves, their fees and their course texts."""
