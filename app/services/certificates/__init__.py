"""Certificates: eligibility, numbers, the PDF, bulk runs and Open Badges credentials."""
