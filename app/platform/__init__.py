"""Machinery that knows no course rule: languages, mail outbox, PDFs, files, jobs, audit rows."""
