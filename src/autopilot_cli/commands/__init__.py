"""Commands that capabilities add to `autopilot` (each module has ``register(subparsers)``)."""
