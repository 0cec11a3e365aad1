"""segpilot.search: checks candidate blocks in Lean, ranks them, and searches for whole proofs."""
