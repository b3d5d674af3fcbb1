"""Billing: invoices, payments, refunds and statements, as pages and as the JSON API."""
