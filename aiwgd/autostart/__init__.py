"""Start the daemon with the user's session: a systemd user unit (Linux) or a launchd
agent (macOS) per project root. `aiwg autostart enable|disable|status` drives it.

slug.py names a project; systemd.py and launchd.py render the file and the commands
(pure); install.py writes or removes the file and runs the commands as argv lists.
Stdlib only (plus aiwgd.config and aiwgd.client): the CLI imports it.
"""
