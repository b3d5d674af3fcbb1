"""Billing: invoices, credit notes, payments, refunds and the records the tax agency keeps."""
