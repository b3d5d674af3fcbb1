"""Billing pages and API: invoices, payments, refunds and statements."""
