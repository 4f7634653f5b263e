"""Silence the progress bars of the Hugging Face libraries.

The service logs one line per event and never draws bars (a bar writing to a closed stderr
pipe can hang the process in tqdm's lock); the command line draws its own, and none with
``-q`` or when stderr is not a terminal.
"""

from __future__ import annotations


def disable_library_progress_bars() -> None:
    """Turn off transformers' bars ("Loading weights"...) and the hub's download bars."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the hub's bars too
