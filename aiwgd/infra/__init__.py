"""Shared plumbing: durable writes, the daemon log, the PID lock, small state files."""
