"""Registrations: applications, decisions, groups, review, the waiting list and cancellations."""
