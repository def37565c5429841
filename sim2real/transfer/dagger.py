"""Transfer method: dagger (being written)."""
