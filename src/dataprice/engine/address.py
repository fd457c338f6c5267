"""Cluster addresses: their form (checked by the scenario schema, no network), and whether
something listens there (checked by an engine's ``start()``, within ``connect_timeout``)."""

from __future__ import annotations

import math
import re
import socket
import threading
from typing import Any

from dataprice.engine.base import _CHOOSE, KINDS
from dataprice.errors import EngineError
from dataprice.inputs import excerpt, shorten

# ----------------------------------------------------------------------------- addresses

ADDRESS_FORMS = {
    "dask": "tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT",
    "ray": "HOST:PORT, ray://HOST:PORT or auto",
}
_SCHEMES = {"dask": ("tcp", "tls"), "ray": ("ray",)}
_WHAT = {"dask": "Dask scheduler", "ray": "Ray cluster"}
# a host name or IPv4 address (letters, digits, dots, dashes, underscores), or [IPv6]
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.%A-Za-z]+\]")



def _split_address(kind: str, address: str) -> tuple[str | None, str, int] | str:
    """``(scheme or None, host, port)`` of ``address`` for a ``kind`` engine, or what is wrong."""
    forms, what = ADDRESS_FORMS[kind], _WHAT[kind]
    scheme, rest = address.split("://", 1) if "://" in address else (None, address)
    if scheme is not None and scheme.lower() not in _SCHEMES[kind]:
        return f"unknown scheme {excerpt(scheme + '://')} in {excerpt(address)}; a {what} address is {forms}"
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        return f"{excerpt(address)} is not a {what} address (expected HOST:PORT); use {forms}"
    if not _HOST.fullmatch(host):
        return f"{excerpt(address)}: {excerpt(host)} is not a host name or IP address; use {forms}"
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{excerpt(address)}: the port must be a number from 1 to 65535 (got {excerpt(port)}); use {forms}"
    return (scheme.lower() if scheme else None), host, int(port)


def address_problem(kind: str, address: Any) -> str | None:
    """What is wrong with ``address`` for an engine of ``kind``, or None if nothing is.

    Pure and cheap (no network, no imports of Dask or Ray), so the scenario schema can
    reject a bad ``engine.address`` before anything runs. The answer is one line without
    a field name (the caller adds ``engine.address:``), quoting at most a short excerpt of
    the value, and says what is allowed: Dask takes ``tcp://HOST:PORT``,
    ``tls://HOST:PORT`` or ``HOST:PORT``; Ray takes ``HOST:PORT`` (the GCS port, 6379 by
    default), ``ray://HOST:PORT`` (Ray Client) or ``auto``; ``serial`` and ``loky`` take
    none. ``None`` means "start a local cluster" for Dask and Ray. An unknown ``kind`` is
    reported too (a problem of ``engine.kind``). Whether something listens at the address
    is for the engine's ``start()`` to find out.
    """
    if kind not in KINDS:
        return f"unknown engine {excerpt(kind)}; {_CHOOSE}"
    if address is None:
        return None
    if kind not in ADDRESS_FORMS:
        return (
            f"the {kind} engine takes no address (got {excerpt(address)}); remove it, "
            "or use kind 'dask' or 'ray' to reach a cluster"
        )
    forms, what = ADDRESS_FORMS[kind], _WHAT[kind]
    if not isinstance(address, str):
        return f"expected a text address, got {type(address).__name__}; a {what} address is {forms}"
    if not address.strip():
        return f"the address is empty; omit it to start a local cluster, or give {forms}"
    if address != address.strip() or any(c.isspace() or not c.isprintable() for c in address):
        return (
            f"{excerpt(address)} contains spaces or control characters; a {what} address is {forms}"
        )
    if kind == "ray" and address == "auto":
        return None
    if kind == "ray" and address == "local":
        return f"'local' is not a cluster address; omit the address to start a local Ray instance, or give {forms}"
    split = _split_address(kind, address)
    return split if isinstance(split, str) else None


def checked_address(kind: str, address: Any) -> tuple[str, str, int]:
    """``(address, host, port)`` of a cluster ``address`` for a ``kind`` engine, or a one-line
    :class:`EngineError` saying what is wrong (as :func:`address_problem`)."""
    problem = address_problem(kind, address)
    if problem is None and address is None:
        problem = "no address given"
    split = problem or _split_address(kind, address)
    if isinstance(split, str):
        raise EngineError(f"engine.address: {split}")
    _, host, port = split
    return address, host, port


def _reason(exc: BaseException) -> str:
    """One short line for an exception from Dask, Ray or the socket layer."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return "no answer"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return shorten(f"{type(exc).__name__}: {text}", 160)


def _tcp_problem(host: str, port: int, timeout: float) -> str | None:
    """None if a TCP connection to ``host:port`` opens within ``timeout`` s, else why not.

    The name lookup runs in a daemon thread too, so a slow resolver cannot stretch the wait
    (a lookup still running when the time is up is left to finish on its own)."""
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host.strip("[]"), port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(_reason(exc))

    thread = threading.Thread(target=attempt, name="dataprice-connect-check", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else "no answer"


def _unreachable(
    kind: str, address: str, timeout: float, reason: str, start_hint: str
) -> EngineError:
    """The error for an address where nothing accepts a connection (``start_hint``: how to start it)."""
    return EngineError(
        f"engine.address: cannot reach the {_WHAT[kind]} at {excerpt(address)} within {timeout:g} s "
        f"({reason}); {start_hint} or fix the address"
    )


def _check_timeout(timeout: Any) -> float:
    """``timeout`` as seconds, if it is a positive finite number; else a one-line EngineError."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < math.inf
    ):
        raise EngineError(
            f"engine.connect_timeout: must be a positive number of seconds (got {excerpt(timeout)})"
        )
    return float(timeout)
