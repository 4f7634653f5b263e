"""Automatic audio description: what is on screen, timed to fall in the pauses of dialogue."""
