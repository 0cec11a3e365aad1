"""One wrapper for every LSP handler: counts the request, and turns an unexpected failure
into a RequestFailed error (or, for a notification, a log line) that `segpilot/status`
lists, so no message a client sends ever gets an Internal Error or stops the server."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException

log = logging.getLogger(__name__)

REQUEST_FAILED = -32803
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = REQUEST_FAILED) -> JsonRpcException:
    """The error a request answers with (default: RequestFailed)."""
    return JsonRpcException.from_error(
        types.ResponseError(code=code, message=f"segpilot: {message}")
    )


def guarded(handler: F) -> F:
    """`handler` (first parameter `ls`), counted and made failure-safe; a plain function
    stays plain, so pygls still runs it in order with the messages around it."""
    name = handler.__name__

    def count(ls: Any) -> Any:
        engine = getattr(ls, "engine", None)
        if engine is not None:
            engine.stats.requests[name] += 1
        return engine

    def failed(engine: Any, err: Exception) -> JsonRpcException:
        message = f"{name} failed: {type(err).__name__}: {err}"
        log.error("%s", message, exc_info=err)
        if engine is not None:
            engine.stats.errors.append(message)
        return fail(message)

    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def run_async(ls: Any, *args: Any) -> Any:
            engine = count(ls)
            try:
                return await handler(ls, *args)
            except (JsonRpcException, asyncio.CancelledError):
                raise
            except Exception as err:
                raise failed(engine, err) from None

        return run_async  # type: ignore[return-value]

    @functools.wraps(handler)
    def run(ls: Any, *args: Any) -> Any:
        engine = count(ls)
        try:
            return handler(ls, *args)
        except JsonRpcException:
            raise
        except Exception as err:
            raise failed(engine, err) from None

    return run  # type: ignore[return-value]
