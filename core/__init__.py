"""Shared plumbing every part may import: settings, database, the route model; it imports none of them."""
