"""Policy network builders for stable-baselines3, and the torch-free deployment runtime (``deploy``)."""
