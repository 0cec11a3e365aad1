"""segpilot.model: the policy (llama.cpp backend, prompt presets, safety filter)."""
