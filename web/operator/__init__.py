"""Operator JSON API under `/api`."""
