"""Executors run one attempt of a task; the supervisor decides the rest."""
