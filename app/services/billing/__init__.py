"""Billing: quotes, invoices and their numbers, payments, card payments, statements, refunds."""
