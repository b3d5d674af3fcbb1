"""Billing: who invoices are made out to, their tax, and their electronic forms."""
