"""Measured accuracy: labelled videos (truth), per-plugin scores against them, and the figures the registry reads."""
