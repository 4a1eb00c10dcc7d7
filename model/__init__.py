"""SRGAN network, weights, tiled inference, training and evaluation (no HTTP here)."""
