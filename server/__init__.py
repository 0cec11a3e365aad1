"""segpilot: checked multi-tactic segment suggestions for Lean 4 from a local model."""

__version__ = "0.1.0"
