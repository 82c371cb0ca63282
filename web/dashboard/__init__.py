"""The operator dashboard (server-rendered, live): wired by `web.dashboard.app`."""
