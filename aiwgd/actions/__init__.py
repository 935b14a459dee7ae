"""Running an action (task, emit, webhook, log) with templates."""
