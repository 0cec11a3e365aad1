"""The service every front end calls (the `segpilot` commands and the LSP sidecar): settings,
per-project Lean processes, goals at a cursor, suggestions with their cache and prefetch."""
