"""Docker plumbing shared by the kinds: the one docker-py client, the per-plan snapshot, the stack lock, host facts."""
