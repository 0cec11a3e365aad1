"""segpilot.training: trace -> dataset -> LoRA -> export (see DESIGN.md)."""
