"""The native half of the package (Rust). Use `metering.MeteringClient`, not this."""

import asyncio
import os
from decimal import Decimal
from typing import Any, Callable, Dict, Optional, Union, final

__all__ = ["Client", "EventRejected", "MeteringError"]

class MeteringError(Exception):
    """A metering operation failed: bad settings, an unreachable server, a closed client."""

class EventRejected(MeteringError):
    """The server (or the embedded store) refused an event as invalid."""

_Quantity = Union[int, float, Decimal, str]

@final
class Client:
    def __new__(
        cls,
        url: str,
        api_key: Optional[str],
        mode: str,
        batch_size: int,
        batch_interval_ms: int,
        max_retries: int,
        timeout_ms: int,
        spill_path: Optional[Union[str, os.PathLike[str]]] = None,
        max_buffered: Optional[int] = None,
    ) -> "Client": ...
    def record(
        self,
        tenant_id: str,
        resource: str,
        feature: str,
        quantity: Optional[_Quantity] = None,
        metadata: Optional[str] = None,
        timestamp: Optional[str] = None,
        id: Optional[str] = None,
    ) -> None: ...
    def send(
        self,
        tenant_id: str,
        resource: str,
        feature: str,
        quantity: Optional[_Quantity] = None,
        metadata: Optional[str] = None,
        timestamp: Optional[str] = None,
        id: Optional[str] = None,
    ) -> bool: ...
    def send_soon(
        self,
        event_loop: asyncio.AbstractEventLoop,
        done: Callable[[Optional[bool], Optional[str]], Any],
        tenant_id: str,
        resource: str,
        feature: str,
        quantity: Optional[_Quantity] = None,
        metadata: Optional[str] = None,
        timestamp: Optional[str] = None,
        id: Optional[str] = None,
    ) -> None: ...
    def validate(self, request: str) -> str: ...
    def validate_soon(
        self,
        event_loop: asyncio.AbstractEventLoop,
        done: Callable[[Optional[str], Optional[str]], Any],
        request: str,
    ) -> None: ...
    def flush(self, timeout: Optional[float] = None) -> Dict[str, int]: ...
    def close(self) -> Dict[str, int]: ...
    def stats(self) -> Dict[str, int]: ...
