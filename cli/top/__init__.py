"""`aiwg top`: the live terminal view of the daemon (Textual).

Kept empty of imports: `aiwg --help` imports the command module (cli/top/command.py)
to list it, and only running `aiwg top` may load Textual.
"""
