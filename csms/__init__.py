"""OCPP central system: hub, charging domain, store."""
