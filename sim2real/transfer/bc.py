"""Transfer method: bc (being written)."""
