"""Checkpoints, downloads and measurements."""
