"""Spark: one response cache in front of OpenAI, AWS Bedrock and Google Gemini."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
