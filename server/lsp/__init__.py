"""The LSP sidecar: a pygls server over stdio (`segpilot serve`)."""
