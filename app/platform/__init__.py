"""Machinery that knows no course rule."""
