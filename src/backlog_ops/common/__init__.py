"""Plumbing every part shares: the state directory, atomic writes, locks, JSON, times."""
