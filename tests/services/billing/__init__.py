"""Billing: invoices, payments, refunds and statements."""
