"""Money jobs: the outbox, its handlers and the taskiq broker."""
