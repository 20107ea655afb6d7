"""The ``reprocas`` command line (Typer)."""
