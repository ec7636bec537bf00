"""Real infrastructure for tests (nginx, Redis): private instances on loopback, free ports."""
