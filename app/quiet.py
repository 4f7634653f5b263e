"""Keep the Hugging Face libraries' output to our own log lines: no progress bars where they
are not wanted, and no second copy of each of their warnings.

The service logs one line per event and never draws bars (a bar writing to a closed stderr
pipe can hang the process in tqdm's lock); the command line draws its own, and none with
``-q`` or when stderr is not a terminal.
"""

from __future__ import annotations

import logging


def disable_library_progress_bars() -> None:
    """Turn off transformers' bars ("Loading weights"...) and the hub's download bars."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the hub's bars too


def route_library_logs() -> None:
    """Send huggingface_hub's records through the app's log handlers only.

    When its logging module is imported it gives the library's logger a stderr handler of its
    own, and records still pass up to the root logger: every warning (each retry of a
    download) was printed twice.
    """
    import huggingface_hub.utils.logging  # noqa: F401  (its import adds the handler)

    hub_logger = logging.getLogger("huggingface_hub")
    for handler in list(hub_logger.handlers):
        hub_logger.removeHandler(handler)
