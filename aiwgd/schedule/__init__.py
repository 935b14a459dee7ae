"""The cron scheduler: cron.fired events and job actions."""
