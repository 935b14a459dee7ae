"""The file watcher: watchfiles -> debounced, filtered file.* events."""
