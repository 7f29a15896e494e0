"""Artifacts and summaries, one module per kind; written once, on the controller."""
