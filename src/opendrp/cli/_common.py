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
    """Turn openDRP errors into one line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return func(*args, **kwargs)
        except OpenDRPError as exc:
            if ctx.find_root().params.get("debug"):
                raise
            click.echo(f"error: {exc.one_line()}", err=True)
            sys.exit(2)

    return wrapper
