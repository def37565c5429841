"""sim2real.transfer."""
