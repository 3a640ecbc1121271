"""The scheduler: which occurrences are due (pure rules), claims and watermarks (store),
and the dispatcher tick that runs each occurrence exactly once (service)."""
