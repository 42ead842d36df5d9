"""Metrics and reports: student vs teacher vs gold labels."""
