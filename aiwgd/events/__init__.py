"""The event router, its dead-letter queue, the event log and events.* methods."""
