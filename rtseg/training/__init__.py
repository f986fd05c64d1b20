"""Training loop, losses and evaluation."""
