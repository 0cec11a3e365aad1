"""segpilot.lean: Lean I/O (REPL client, language-server client) and goal parsing.

Nothing here knows about models.
"""
