"""The aiwg command-line client (imports nothing heavy from the daemon)."""
