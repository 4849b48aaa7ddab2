"""Spark testing package."""
