"""Thin Typer commands, one per DVC stage (see app.py)."""
