"""What pingu keeps across restarts: its state file, and py-pingu's gateways file when one
is configured. Both are read once at start-up and written whenever what they hold changes:
off the event loop, one write at a time, failures logged at a bounded rate (a full disk
must not turn every routing event into an ERROR line)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from pingu.adapters.gateways_file import gateways_document, parse_gateways
from pingu.adapters.state_file import WriteFailures
from pingu.domain.core import Core
from pingu.domain.ports import StateStore
from pingu.domain.state import StateError, parse_state, state_document

log = logging.getLogger("pingu")

Document = dict[str, object]


class KeptFile:
    """One JSON file kept up to date with `document()`: a write starts when it changed and
    none is under way; the write that ends checks again."""

    def __init__(self, store: StateStore, what: str, document: Callable[[], Document]) -> None:
        self.store = store
        self.what = what
        self._document = document
        self._saved: Document | None = None
        self._writing: asyncio.Task[None] | None = None
        self._failures = WriteFailures()

    def save(self, *, final: bool = False) -> None:
        wanted = self._document()
        if wanted == self._saved:
            return
        if final:
            self._write(wanted)
        elif self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_later(wanted), name=self.what)

    async def settled(self) -> None:
        """Until the write under way (if any) has ended."""
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await self._writing

    async def _write_later(self, wanted: Document) -> None:
        if await asyncio.to_thread(self._write, wanted):
            self.save()  # what changed while the file was being written

    def _write(self, wanted: Document) -> bool:
        try:
            self.store.write(wanted)
        except OSError as error:
            self._failures.failed(log, self.what, error)  # once, then at a bounded rate
            return False
        self._failures.succeeded(log, self.what)
        self._saved = wanted
        return True


class Keeper:
    """The state file and the gateways file of one daemon, for its core."""

    def __init__(
        self,
        core: Core,
        *,
        state: StateStore | None,
        state_path: str | None,
        gateways: StateStore | None,
        gateways_path: str | None,
        boot: str,
        started_mono: float,
        started_wall: float,
    ) -> None:
        self.core = core
        self._boot = boot
        self._started = (started_mono, started_wall)
        self._state_store, self._state_path = state, state_path
        self._gateways_store, self._gateways_path = gateways, gateways_path
        self._files = [
            KeptFile(state, f"state file {state_path}", self._state_document) if state else None,
            KeptFile(gateways, f"gateways file {gateways_path}", self._gateways_document)
            if gateways
            else None,
        ]

    def load(self, now: float) -> None:
        """What an earlier run saved, into the core (before it reads the table)."""
        store, where = self._state_store, self._state_path
        if store is None:
            return
        try:
            document = store.read()
            if document is None:
                log.info("state file %s: none yet, starting fresh", where)
                return
            saved = parse_state(document, self._boot, self._started[1])
        except StateError as error:
            log.warning("state file %s ignored: %s", where, error)
            return
        taken = self.core.adopt_state(saved, now)
        if isinstance(document, dict) and document.get("boot_id") != self._boot:
            log.info("state file %s: saved in another boot, gateways not reused", where)
        if taken:
            log.info("state file %s: adopted %s", where, "; ".join(taken))

    def adopt_gateways(self, now: float) -> bool:
        """py-pingu's gateways for the uplinks that still know none; whether any was taken."""
        store, where = self._gateways_store, self._gateways_path
        if store is None:
            return False
        try:
            gateways = parse_gateways(store.read())
        except StateError as error:
            log.warning("gateways file %s ignored: %s", where, error)
            return False
        taken = self.core.adopt_gateways(gateways, now)
        if taken:
            log.info(
                "gateways file %s: took %s (routed once a round through them passes)",
                where,
                "; ".join(taken),
            )
        return bool(taken)

    def save(self, *, final: bool = False) -> None:
        for kept in self._files:
            if kept is not None:
                kept.save(final=final)

    async def settled(self) -> None:
        for kept in self._files:
            if kept is not None:
                await kept.settled()

    def _state_document(self) -> Document:
        mono0, wall0 = self._started
        return state_document(self.core.saved_state(mono0), self._boot, wall0)

    def _gateways_document(self) -> Document:
        return gateways_document({u.name: u.lease for u in self.core.view().uplinks})
