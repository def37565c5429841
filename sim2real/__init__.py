"""sim2real: domain-randomized training, transfer to perturbed dynamics, evaluation and export on MuJoCo."""

__version__ = "0.1.0"
