"""Machinery that knows no course rule: languages, the mail outbox, PDFs, files, jobs, audit rows."""
