"""State: the recorded result of apply (statefile) and the lock that serializes writers (lock)."""
