"""The application on top of the core and the adapters: the `driftline` command, the
supervisor behind `driftline up`, and traffic simulation."""
