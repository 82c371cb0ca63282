"""Billing persistence: ports per aggregate and their adapters."""
