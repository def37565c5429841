"""Transfer method: dann (being written)."""
