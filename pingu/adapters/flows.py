"""The Flows port: end what a route change broke, through ctnetlink and sock_diag.

When traffic leaves an uplink, two kinds of state still carry its address:

- conntrack entries of flows source-NATed to it or sent by the box from it: either way
  their answers come back to it, so their reply tuple is addressed to it (a flow the box
  sent from it but NATed to another address is that address's). The kernel keeps NATing
  a flow as its entry says, so a UDP tunnel refreshing its entry never moves. Deleted,
  the flow's next packet makes a new entry, NATed and routed anew. They are found by a
  ctnetlink dump the kernel filters on that address, and deleted in batches of requests
  each naming one entry by that reply (:mod:`pingu.adapters.ctnetlink`): never a
  command, and never the new entry the kernel may have made for the flow meanwhile.
- the box's own TCP connections from that address (:mod:`pingu.adapters.sock_diag`).

Only what the change broke: a flow or connection whose packets still leave by the uplink
(a host route through it, a peer on its own network, a socket bound to it) is left alone,
as the kernel's route for it says now (:mod:`pingu.adapters.route_lookup`). Deleting such
an entry would not be harmless: the next packet from the far end would find none, reach
the box itself and be answered with a reset.

Masqueraded entries are found the same way: ctnetlink cannot tell masquerade from a
source NAT to the uplink's own address. The kernel drops those itself at their next
packet through another interface; deleting them first only spares that packet.

Every call is bounded in time and runs in a worker thread; what the kernel lacks is found
once, at `check()`.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from dataclasses import dataclass

from pingu.adapters.ctnetlink import Ctnetlink, CtnetlinkError
from pingu.adapters.route_lookup import RouteLookup
from pingu.adapters.sock_diag import Connection, SockDiag, SockDiagError
from pingu.domain.commands import EndFlows
from pingu.domain.events import FlowsEnded
from pingu.domain.model import Family

log = logging.getLogger("pingu")

END_TIMEOUT_S = 10.0
Way = tuple[str, str | None, int | None]  # destination, source, bound interface: a way out
MAX_ENTRIES = 100_000  # per address and direction: a bound on one pass, not a limit in use


@dataclass
class Support:
    """What this kernel offers; None: works, else why not."""

    conntrack: str | None = None
    sockets: str | None = None


class KernelFlows:
    """Deletes conntrack entries and destroys TCP connections of an address."""

    def __init__(self) -> None:
        self.support = Support()
        self._checked = False
        self._filtered = True  # the kernel filters dumps by address

    async def check(self) -> Support:
        """Find out once what the kernel supports; log what it lacks."""
        if self._checked:
            return self.support
        self._checked = True
        try:
            self._filtered = await asyncio.wait_for(
                asyncio.to_thread(_conntrack_filters), END_TIMEOUT_S
            )
        except (OSError, CtnetlinkError, TimeoutError) as error:
            self.support.conntrack = f"ctnetlink: {str(error) or type(error).__name__}"
            log.warning(
                "conntrack: not available (%s): NATed flows are not ended when traffic "
                "leaves an uplink",
                self.support.conntrack,
            )
        else:
            if not self._filtered:
                log.warning(
                    "conntrack: the kernel filters no dump by address (CTA_FILTER, Linux "
                    "5.8): every entry is read when traffic leaves an uplink"
                )
        self.support.sockets = await asyncio.to_thread(_destroy_support)
        if self.support.sockets is not None:
            log.warning(
                "sock_diag destroy: not available (%s): the box's own connections are not "
                "ended when traffic leaves an uplink (a kernel without "
                "CONFIG_INET_DIAG_DESTROY)",
                self.support.sockets,
            )
        return self.support

    async def end(self, request: EndFlows) -> FlowsEnded:
        """End the flows of `request`'s addresses; what failed is in `error`. Entries and
        connections are ended side by side: a local program need not wait for a large
        conntrack table to be gone through before its connection fails."""
        await self.check()
        addresses = _of_family(request.addresses, request.family)
        errors: list[str] = []

        async def entries() -> int:
            if not (request.conntrack and self.support.conntrack is None and addresses):
                return 0
            try:
                work = asyncio.to_thread(
                    _delete_entries, addresses, request.ifindex, filtered=self._filtered
                )
                return await asyncio.wait_for(work, END_TIMEOUT_S)
            except (OSError, CtnetlinkError, TimeoutError) as error:
                errors.append(f"conntrack: {str(error) or type(error).__name__}")
                return 0

        async def connections() -> int:
            if not (request.sockets and self.support.sockets is None and addresses):
                return 0
            try:
                work = asyncio.to_thread(_destroy_connections, addresses, request.ifindex)
                return await asyncio.wait_for(work, END_TIMEOUT_S)
            except (OSError, TimeoutError, SockDiagError) as error:
                errors.append(f"sockets: {str(error) or type(error).__name__}")
                return 0

        deleted, destroyed = await asyncio.gather(entries(), connections())
        failed = "; ".join(sorted(errors)) or None
        return FlowsEnded(request.uplink, request.family, deleted, destroyed, failed)


def _of_family(addresses: tuple[str, ...], family: Family) -> list[str]:
    wanted = 4 if family is Family.IPV4 else 6
    found: list[str] = []
    for address in addresses:
        try:
            if ipaddress.ip_address(address).version == wanted and address not in found:
                found.append(address)
        except ValueError:
            continue
    return found


def _delete_entries(addresses: list[str], ifindex: int | None, *, filtered: bool) -> int:
    """Delete the live entries answered to `addresses` whose packets no longer leave by
    interface `ifindex`; how many went (blocking: run in a thread). Each datagram of the
    dump is acted upon as it comes, the deletions on a second socket, so that the flows
    found first go at once, whatever the size of the table."""
    wanted = {ipaddress.ip_address(a) for a in addresses}
    seen: set[tuple[int | None, bytes]] = set()
    deleted = 0
    with Ctnetlink() as dump, Ctnetlink() as deleter, _Ways(ifindex) as ways:
        for address in addresses:
            for batch in dump.batches_answered_to(address, filtered=filtered):
                fresh = [e for e in batch if (e.id, e.reply) not in seen]
                seen.update((e.id, e.reply) for e in fresh)
                # The box's own flow leaves from its address; a NATed one is routed by
                # its destination alone (its source is a LAN host's).
                broken = [
                    e for e in fresh
                    if ways.broken(e.dst, e.src if ipaddress.ip_address(e.src) in wanted else None)
                ]  # fmt: skip
                deleted += deleter.delete(broken)
                if len(seen) >= MAX_ENTRIES:
                    return deleted
    return deleted


def _conntrack_filters() -> bool:
    """Whether ctnetlink answers, and filters dumps by address (raises when it is not
    there at all)."""
    with Ctnetlink() as ct:
        try:
            ct.answered_to("0.0.0.0", 1)
        except CtnetlinkError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            ct.every(socket.AF_INET, 1)
            return False
    return True


class _Ways:
    """Whether a way out (destination, source, bound interface) no longer leaves by
    `ifindex`, the uplink traffic left: a flow the route change broke. An uplink whose
    interface is gone broke all of them; so does a lookup that fails (no way to tell)."""

    def __init__(self, ifindex: int | None) -> None:
        self.ifindex = ifindex
        self.kept = 0
        self._lookup: RouteLookup | None = None
        if ifindex is not None:
            try:
                self._lookup = RouteLookup()
            except OSError as error:
                log.debug("no route lookups (%s): every flow of the uplink is ended", error)

    def __enter__(self) -> _Ways:
        return self

    def __exit__(self, *_: object) -> None:
        if self._lookup is not None:
            self._lookup.close()
        if self.kept:
            log.debug("%d flow(s) left alone: still routed through interface %s", self.kept,
                      self.ifindex)  # fmt: skip

    def broken(self, dst: str, src: str | None, oif: int | None = None) -> bool:
        if self._lookup is None:
            return True
        try:
            leaves = self._lookup.leaves_by(dst, src, oif)
        except OSError as error:
            log.debug("route lookup of %s failed (%s): ended", dst, error)
            return True
        if leaves == self.ifindex:
            self.kept += 1
            return False
        return True


def _broken(ifindex: int | None, ways: list[Way]) -> list[bool]:
    """For each way out, whether the route change broke it (see `_Ways`)."""
    with _Ways(ifindex) as check:
        return [check.broken(*way) for way in ways]


def _destroy_connections(addresses: list[str], ifindex: int | None) -> int:
    destroyed = 0
    with SockDiag() as diag:
        for address in addresses:
            found = diag.connections(address)
            broken = _broken(ifindex, [_way(c) for c in found])
            for connection in (c for c, ended in zip(found, broken, strict=True) if ended):
                if diag.destroy(connection):
                    destroyed += 1
                    log.debug("destroyed TCP connection %s", connection.describe())
    return destroyed


def _way(connection: Connection) -> Way:
    return connection.remote, connection.local, connection.interface or None


def _destroy_support() -> str | None:
    try:
        with SockDiag() as diag:
            return diag.can_destroy()
    except OSError as error:
        return f"sock_diag: {error}"
