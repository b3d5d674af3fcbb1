"""HTTP only: templates, dependencies, request sessions, security headers and error answers."""
