"""Spark config package."""
