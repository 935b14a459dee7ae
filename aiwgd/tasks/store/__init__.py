"""The crash-safe task store: journal, snapshot, recovery, index, ids."""
