"""sim2real.data."""
