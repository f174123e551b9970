"""What every `llmobs` sub-command shares: one-line errors, the DURATION option type, safe file reading.

Why one module: the promise "bad input gets one `error: …` line and a nonzero exit, never a traceback"
has to hold for every command, so the pieces that keep it (the error boundary, the file and YAML readers,
the listen check) live in one place instead of in each command.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from functools import wraps
from typing import Any, NoReturn, Protocol, TypeGuard, TypeVar, cast

import typer

from llmobs._extras import MissingExtraError
from llmobs._yaml import YamlError
from llmobs.durations import EXAMPLES, DurationError, parse_duration

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INPUT = 2
"""Bad input: usage, configuration, an unreadable or malformed file (the same code click uses for usage)."""
EXIT_STARTUP = 1
"""The input is fine but the process could not start or run: a port in use, an unexpected failure."""


INPUT_ERRORS: tuple[type[Exception], ...] = (DurationError, YamlError, MissingExtraError)
"""Errors any command may meet whose message is written to be printed as is."""


class CliError(Exception):
    """A problem to print as `error: <message>` and exit with `exit_code`, without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, exit_code: int = EXIT_INPUT) -> NoReturn:
    """Print `error: <message>` on stderr and exit (for use inside a typer command)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(exit_code)


def one_line_errors(*expected: type[Exception]) -> Callable[[F], F]:
    """Turn `CliError`, the shared input errors (a bad duration, an unreadable YAML file, a missing pip
    extra) and the command's own `expected` error types into one `error:` line and exit 2.

    Each type listed is one the command's library raises for bad input, with a message written to be
    printed as is; anything else is left to `run_app`'s boundary, which says it is unexpected.
    """
    handled = (*INPUT_ERRORS, *expected)

    def decorate(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except CliError as exc:
                fail(str(exc), exc.exit_code)
            except handled as exc:
                fail(str(exc))

        return cast(F, wrapper)  # wraps() keeps the signature typer reads

    return decorate


def example(*command_lines: str) -> str:
    """The `Example:` epilog every command's --help ends with."""
    return "\n\n".join(f"Example: {line}" for line in command_lines)


def problems_message(where: str, problems: Sequence[str]) -> str:
    """One problem on one line; several as a header and one indented line each."""
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    return f"{where} has {len(problems)} problems:\n  " + "\n  ".join(problems)


def validation_problems(exc: Any) -> list[str]:
    """`key.path: message` for each error of a pydantic ValidationError."""
    return [f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()]


def DURATION(value: str | float) -> float:
    """Typer `parser=` for every duration option: `90`, `30s`, `5m`, `1.5h` → seconds.

    A bad value is a usage error naming the option (typer.BadParameter keeps the message as written).
    """
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise typer.BadParameter(str(exc)) from None


def OFFSET(value: str | float) -> float:
    """Typer `parser=` for a duration that may be zero: an offset such as `--start 0` (from the beginning)."""
    try:
        return parse_duration(value, allow_zero=True)
    except DurationError as exc:
        raise typer.BadParameter(str(exc)) from None


DURATION_HELP = f"({EXAMPLES}; a bare number is seconds)"


def ensure_can_listen(what: str, host: str, port: int) -> None:
    """Bind (and release) host:port now, so a port in use is one line naming the server, not a traceback.

    Start-up binds again right after; this check only decides who reports the failure. Port 0 (any free
    port) is checked too: the host may not resolve, or not be this machine's.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise CliError(f"{what} cannot listen on {host}:{port}: {exc.strerror}", EXIT_STARTUP) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(f"{what} port {port} on {host} is already in use (another llmobs? choose another "
                               "port)", EXIT_STARTUP) from None
            raise CliError(f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_STARTUP) from None


def describe_unexpected(exc: BaseException) -> tuple[str, int]:
    """The one line and exit code for an exception no command turned into a CliError."""
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return f"address already in use: {exc.strerror or exc}", EXIT_STARTUP
        if exc.filename:
            return f"{exc.filename}: {exc.strerror or exc}", EXIT_STARTUP
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"unexpected {type(exc).__name__}{': ' + text if text else ''} "
            "(rerun with -v for the traceback; please report it)"), EXIT_STARTUP


class _ClickError(Protocol):
    """What run_app uses of a click usage error."""

    exit_code: int

    def format_message(self) -> str: ...


def _is_click_error(exc: BaseException) -> TypeGuard[_ClickError]:
    """A click usage error (missing option, bad value, unknown command). Duck-typed, because typer may
    vendor click (its own exception classes) or use the click package."""
    return callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int)


def run_app(app: Callable[..., Any], argv: Sequence[str] | None = None, prog_name: str = "llmobs") -> int:
    """Run a typer app as a program: its exit code, and one `error:` line for anything that goes wrong.

    Usage errors (a missing option, a bad value) become `error: <command>: <what> (see <command> --help)`
    instead of click's boxed multi-line report. Bad input is handled inside the commands; anything else
    that reaches here is unexpected (a bug, or an input no check anticipated) and is reported as such,
    with the traceback under -v.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose") for a in args)
    try:
        result = app(args=args, prog_name=prog_name, standalone_mode=False)
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except INPUT_ERRORS as exc:
        typer.echo(f"error: {exc}", err=True)
        return EXIT_INPUT
    except Exception as exc:
        if _is_click_error(exc):
            if not exc.format_message():  # a group run bare: help already shown
                return int(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else prog_name
            hint = f" (see {where} --help)" if ctx is not None else ""
            typer.echo(f"error: {where}: {exc.format_message()}{hint}", err=True)
            return int(exc.exit_code)
        if verbose:
            traceback.print_exc()
        message, code = describe_unexpected(exc)
        typer.echo(f"error: {message}", err=True)
        return code
    return result if isinstance(result, int) else 0


@contextlib.contextmanager
def kubernetes_credentials_errors() -> Iterator[None]:
    """Around start-up: no cluster credentials is a one-line start-up error, not a traceback.

    Not part of --check-config: credentials come from the pod's service account, which only exists where
    llmobs runs, not where its config is checked (CI, a laptop)."""
    try:
        yield
    except Exception as exc:
        try:
            from kubernetes.config import ConfigException
        except ImportError:
            raise exc from None
        if not isinstance(exc, ConfigException):
            raise
        raise CliError(f"kubernetes: cannot load cluster credentials: {' '.join(str(exc).split())} (in a pod, "
                       "give it a service account; elsewhere set kubernetes.kubeconfig or kubernetes.api_host)",
                       EXIT_STARTUP) from None
