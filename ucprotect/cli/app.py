"""The root Typer app: only wires the command modules together."""
from __future__ import annotations

import typer

from . import _errors, protect, train, verify

app = typer.Typer(
    name="ucprotect",
    help="Make photos unlearnable before you publish them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")):
    _errors.DEBUG["on"] = debug


app.command("protect", epilog=protect.EPILOG)(protect.protect)
app.command("train", epilog=train.EPILOG)(train.train)
app.command("verify", epilog=verify.EPILOG)(verify.verify)


def main() -> None:
    app()
