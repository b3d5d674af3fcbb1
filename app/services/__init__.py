"""The rules of the course office, free of HTTP concerns."""
