"""Driver REST API: `/charge/start`, `/charge/stop`, `/charge/{sessionId}`."""
