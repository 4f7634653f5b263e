"""Automatic audio description: timed descriptions of what is on screen, placed in dialogue pauses."""
