"""One module per `segpilot` command. Each has `register(subparsers)`; heavy imports stay
inside the command's run function so `segpilot --help` is instant."""
