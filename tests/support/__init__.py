"""Shared test support: the OpenAI-compatible test double."""
