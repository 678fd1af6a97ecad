"""Subcommands of the ``diffbmp`` command line (see diffbmp/cli.py)."""
