"""sim2real.export."""
