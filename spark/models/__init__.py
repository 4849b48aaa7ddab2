"""Spark models package."""
