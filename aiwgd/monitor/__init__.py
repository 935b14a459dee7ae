"""The resource monitor: samples every registered child's process tree, keeps a short
history per child, and enforces `limits` by telling the child's owner (on_over)."""
