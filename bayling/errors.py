"""The one error base: what the user can fix (input, files, options, setup), as opposed to a bug.

The CLIs print a `BaylingError` as one line ("error: ...") and exit 2; anything else is a bug and
shows its traceback. Each stage's error subclasses it (and the builtin it always was, so code that
catches ValueError or RuntimeError keeps working).
"""

from __future__ import annotations

__all__ = ["BaylingError", "ConfigError", "USER_ERRORS", "run_cli"]


class BaylingError(Exception):
    """A problem the user can fix; its message is the one line they need."""


class ConfigError(BaylingError, ValueError):
    """Options, recipes and configurations that cannot work as given."""


# What the user can fix, whose message is already the one line they need (file errors name the path).
USER_ERRORS = (BaylingError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def run_cli(app, argv: list[str] | None, prog_name: str) -> None:
    """Run a typer app as every bayling command runs: user errors as one line with exit 2 (the
    traceback with --debug), interrupts with 130, anything else (a bug) with its traceback."""
    import sys

    import typer

    try:  # typer >= 0.28 vendors click
        from typer import _click as click
    except ImportError:
        import click

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    try:
        app(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except USER_ERRORS as err:
        if debug:
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        typer.echo(f"error: {msg}", err=True)
        sys.exit(2)
