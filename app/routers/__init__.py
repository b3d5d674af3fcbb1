"""HTTP only: pages for people and the JSON API call the same services."""
