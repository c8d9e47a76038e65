"""The `fairaudit` command line (typer): parses flags, calls the library, maps errors to exit codes."""
