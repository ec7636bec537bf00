"""Real third-party servers the tests start on loopback (Redis; nginx for the scale-out suite)."""
