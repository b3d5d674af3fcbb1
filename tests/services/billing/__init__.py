"""Tests of the billing room."""
