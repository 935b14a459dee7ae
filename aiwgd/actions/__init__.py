"""Running an action (task, emit, webhook, log) with templates, and what an attempt means."""
