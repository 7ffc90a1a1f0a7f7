"""What every ``opendrp`` command shares: one-line errors."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import OpenDRPError

__all__ = ["handle_errors"]


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn openDRP errors, and the middleware's errors that user input causes, into one line on stderr
    and exit status 2; Ctrl-C into one line and status 130.  ``--debug`` shows the tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = ctx.find_root().params.get("debug")
        try:
            return func(*args, **kwargs)
        except OpenDRPError as exc:
            if debug:
                raise
            click.echo(f"error: {exc.one_line()}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo(
                f"interrupted: `opendrp {ctx.info_name}` stopped -- run the same command again to finish "
                "(what is done is kept)",
                err=True,
            )
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            if debug:
                raise
            from ..repo.butler import describe_middleware_error

            known = describe_middleware_error(exc)
            if known is None:
                raise
            click.echo(f"error: {known.one_line()}", err=True)
            sys.exit(2)

    return wrapper
