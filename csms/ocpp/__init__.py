"""OCPP-J edge: websocket endpoint, station authentication, the hub and per-version handlers."""
