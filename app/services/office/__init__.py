"""The office: dashboard, charts, exports, audit log, staff, backups, demo and personal data."""
