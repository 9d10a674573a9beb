"""Turn library errors into one-line messages with exit code 1 (``--debug`` shows the traceback)."""
from __future__ import annotations

import functools
import sys

from rich.console import Console
from rich.markup import escape

from ..errors import UcprotectError

err_console = Console(stderr=True, emoji=False)  # file names like a:b:.jpg stay as they are
DEBUG = {"on": False}


# What Ctrl-C leaves behind, per command: resuming differs (protect skips finished files, train needs --resume).
INTERRUPTED = {
    "protect": "finished files are kept; re-run the same command to resume.",
    "train": "the last checkpoint (every --checkpoint-every steps) is kept; add --resume to the same command to go on.",
    "verify": "no report was written; a finished clean run is kept if --clean-cache FILE was given, for the next run to reuse.",
}


def handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UcprotectError as e:
            if DEBUG["on"]:
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise SystemExit(1)
        except KeyboardInterrupt:
            err_console.print(f"[yellow]interrupted[/]: {INTERRUPTED.get(fn.__name__, 'stopped.')}")
            raise SystemExit(130)
        except MemoryError:
            err_console.print("[bold red]error:[/] out of memory: lower --batch-size or --workers")
            raise SystemExit(1)

    return wrapper


def exit_code_for(failed: int) -> None:
    if failed:
        sys.exit(1)
