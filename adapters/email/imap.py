"""The IMAP poller: reads replies from a mailbox and hands each to the ``MailProcessor``.

imap-tools is synchronous, so every IMAP call runs on one dedicated worker thread (calls stay
in order, the event loop never blocks). Mail is fetched with ``BODY.PEEK`` (not marked seen)
and moved to ``Processed`` (or ``Failed``, reason logged) only after its commands committed,
so a crash in between means the mail is read again, and the bus's idempotency keys make
that second reading a no-op. Servers with IDLE push new mail; others are polled.

With a ``Lease`` (``lyra-bot run`` always passes one) only the instance holding it polls;
the others wait and take it over when its holder stops renewing it (see ``lyra_bot.lease``).
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from imap_tools import (
    BaseMailBox,
    ImapToolsError,
    MailBox,
    MailBoxStartTls,
    MailBoxUnencrypted,
    MailMessage,
)
from lyra_bot.adapters.email.processing import MailProcessor

from lyra_bot.config import Settings
from lyra_bot.lease import Lease

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ATTEMPTS = 3  # a mail whose processing raised this often goes to Failed
BATCH = 50
IMAP_ERRORS = (ImapToolsError, imaplib.IMAP4.error, OSError, EOFError)


class RawMessage(MailMessage):
    """Keeps the bytes the server sent; the processor parses them itself."""

    def __init__(self, fetch_data: list) -> None:
        super().__init__(fetch_data)
        self.raw = self._get_message_data_parts(fetch_data)[0]


@dataclass
class PollResult:
    processed: int = 0
    failed: int = 0
    deferred: int = 0  # raised while processing; left in the inbox for the next poll


class ImapPoller:
    def __init__(
        self, settings: Settings, processor: MailProcessor, lease: Lease | None = None
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.lease = lease
        self._box: BaseMailBox | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap")
        self._attempts: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- connection (worker thread) -----------------------------------------------------

    def _connect(self) -> BaseMailBox:
        s = self.settings
        host, port, timeout = s.imap_host or "", s.imap_port, s.imap_timeout
        box: BaseMailBox
        if s.imap_tls == "tls":
            box = MailBox(host, port, timeout=timeout)
        elif s.imap_tls == "starttls":
            box = MailBoxStartTls(host, port, timeout=timeout)
        else:
            box = MailBoxUnencrypted(host, port, timeout=timeout)
        box.email_message_class = RawMessage
        password = s.imap_password.get_secret_value() if s.imap_password else ""
        box.login(s.imap_username or "", password, initial_folder=None)
        for folder in (s.imap_processed_folder, s.imap_failed_folder):
            if not box.folder.exists(folder):
                box.folder.create(folder)
        box.folder.set(s.imap_folder)
        return box

    def _disconnect(self) -> None:
        box, self._box = self._box, None
        if box is not None:
            with contextlib.suppress(*IMAP_ERRORS):
                box.logout()

    async def _ensure(self) -> BaseMailBox:
        if self._box is None:
            self._box = await self._call(self._connect)
            log.info("IMAP connected to %s:%s", self.settings.imap_host, self.settings.imap_port)
        return self._box

    # --- one pass -----------------------------------------------------------------------

    def _list(self, box: BaseMailBox) -> list[tuple[str, int]]:
        """(uid, size) of every mail waiting in the folder, oldest first."""
        box.folder.set(self.settings.imap_folder)
        return [
            (msg.uid or "", msg.size_rfc822)
            for msg in box.fetch("ALL", mark_seen=False, headers_only=True, bulk=BATCH)
            if msg.uid
        ]

    def _fetch(self, box: BaseMailBox, uid: str, headers_only: bool) -> bytes | None:
        for msg in box.fetch(uid_list=[uid], mark_seen=False, headers_only=headers_only):
            return msg.raw  # type: ignore[attr-defined]
        return None

    def _move(self, box: BaseMailBox, uid: str, folder: str) -> None:
        box.move(uid, folder)

    async def poll_once(self) -> PollResult:
        """Process every mail in the folder now. IMAP errors propagate (the caller reconnects)."""
        async with self._lock:
            box = await self._ensure()
            result = PollResult()
            for uid, size in await self._call(self._list, box):
                if self.lease is not None and not await self.lease.keep():
                    break  # another instance took over (this one stalled past its lease)
                await self._one(box, uid, size, result)
            self.processor.bus.metrics.transport_ok("imap")
            return result

    async def _one(self, box: BaseMailBox, uid: str, size: int, result: PollResult) -> None:
        """One mail under a correlation id of its own: every line about it (here, in the
        processor, in its commands) carries it."""
        from lyra_bot.logs import correlation

        with correlation(prefix="mail-"):
            await self._one_mail(box, uid, size, result)

    async def _one_mail(self, box: BaseMailBox, uid: str, size: int, result: PollResult) -> None:
        too_big = size > self.settings.inbound_max_bytes
        raw = await self._call(self._fetch, box, uid, too_big)
        if raw is None:
            return
        try:
            outcome = await self.processor.process(raw, "imap", size=size or len(raw))
        except Exception:
            attempts = self._attempts.get(uid, 0) + 1
            self._attempts[uid] = attempts
            if attempts < MAX_ATTEMPTS:
                log.exception("mail uid %s failed (attempt %d); will retry", uid, attempts)
                result.deferred += 1
                return
            log.exception(
                "mail uid %s failed %d times; moving it to %s",
                uid,
                attempts,
                self.settings.imap_failed_folder,
            )
            self._attempts.pop(uid, None)
            await self._call(self._move, box, uid, self.settings.imap_failed_folder)
            result.failed += 1
            return
        self._attempts.pop(uid, None)
        if outcome.status == "processed":
            folder = self.settings.imap_processed_folder
            result.processed += 1
        else:
            folder = self.settings.imap_failed_folder
            result.failed += 1
            log.warning(
                "mail uid %s moved to %s: %s %s", uid, folder, outcome.verdict, outcome.reason
            )
        await self._call(self._move, box, uid, folder)

    # --- running ------------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Poll, then wait for new mail (IDLE, or a timer); reconnect with backoff on errors."""
        backoff = 1.0
        while not stop.is_set():
            try:
                if self.lease is not None and not await self._hold(stop):
                    continue
                await self.poll_once()
                await self._wait(stop)
                backoff = 1.0
            except IMAP_ERRORS as exc:
                self.processor.bus.metrics.transport_failed("imap", exc)
                log.warning("IMAP connection problem (%s); reconnecting in %.0fs", exc, backoff)
                await self._call(self._disconnect)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 300.0)
            except Exception:
                log.exception("IMAP poll failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 300.0)

    async def _hold(self, stop: asyncio.Event) -> bool:
        """True when this instance holds the lease; else drop the connection and wait a bit."""
        assert self.lease is not None
        if await self.lease.keep():
            return True
        if self._box is not None:
            await self._call(self._disconnect)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.lease.renew_every)
        return False

    async def _wait(self, stop: asyncio.Event) -> None:
        box = self._box
        # A lease holder wakes up in time to renew its lease.
        renew = self.lease.renew_every if self.lease is not None else float("inf")
        if box is None or "IDLE" not in box.client.capabilities:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(self.settings.imap_poll_seconds, renew))
            return
        idle = asyncio.ensure_future(
            self._call(box.idle.wait, min(self.settings.imap_idle_seconds, 29 * 60, renew))
        )
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({idle, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not idle.done():
            # Wake the worker thread out of IDLE by closing the socket under it.
            with contextlib.suppress(OSError):
                box.client.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(*IMAP_ERRORS):
                await idle
            self._box = None
            return
        idle.result()  # raises the IMAP error, if any, for run_forever to handle

    async def close(self) -> None:
        with contextlib.suppress(*IMAP_ERRORS, RuntimeError):
            await self._call(self._disconnect)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.lease is not None:
            try:
                await self.lease.release()
            except Exception:  # the database may be gone at shutdown; the lease then expires
                log.warning("could not release lease %s", self.lease.name, exc_info=True)
