"""Conntrack entries through ctnetlink (NETLINK_NETFILTER), found by the address their
answers go to and deleted one by one: the messages built and read with `struct` from
<linux/netfilter/nfnetlink_conntrack.h>, as sock_diag's are.

Why not pyroute2's conntrack API: it parses each entry whole into Python objects, about
0.6 ms an entry here, so that a NAT box's few thousand entries took seconds to go through
and a large table more than the time the adapter allows. Here a dump reads only what the
decision needs (the two tuples, the TCP state, the entry's id), and deletions go in
batches, each answered by an acknowledgement.

- A dump asks the kernel to filter on the reply tuple's destination (CTA_FILTER, Linux
  5.8 and later): only the entries answered to that address come back. IPv4 only: the
  kernel's IPv6 filter is inverted (see `Ctnetlink.answered_to`). Each dump walks
  the kernel's whole conntrack hash table whatever it holds (shared by every namespace:
  262,144 buckets, about 11 ms on the test machines), so one dump per address is made.
- A deletion names the entry by the reply tuple it was dumped with (the attribute sent
  back byte for byte: it holds the address the flow was NATed to) and by its id. An
  entry the kernel replaced meanwhile by a new one for the same flow (a masqueraded one,
  dropped and made again at its next packet, NATed to the new uplink) has the same
  original tuple, and often the same id (a hash of the entry's memory, which the new
  one may take over at once): only its reply tuple differs, so it is not deleted.
- TCP entries of finished connections (TIME_WAIT, CLOSE) are left to expire: nothing
  flows there to be moved, and a NAT box holds many of them.

Blocking calls, each bounded by TIMEOUT_S; the flows adapter runs them in a thread.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pingu.adapters.rawnetlink import (
    ATTRIBUTE,
    HEADER,
    NLA_F_NESTED,
    NLA_TYPE_MASK,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NetlinkError,
    RawNetlink,
    attribute,
    error_code,
    message,
    messages,
    sequence_of,
)

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_DELETE = 1, 2
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_PROTOINFO, CTA_ID, CTA_ZONE, CTA_FILTER = 1, 2, 4, 12, 18, 25
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE = 1, 1
CTA_FILTER_REPLY_FLAGS = 2
CTA_FILTER_FLAG_IP_DST = 1 << 1
TCP_CONNTRACK_TIME_WAIT, TCP_CONNTRACK_CLOSE = 7, 8
FINISHED = frozenset({TCP_CONNTRACK_TIME_WAIT, TCP_CONNTRACK_CLOSE})
TIMEOUT_S = 5.0
RECEIVE_SIZE = 1 << 20
SEND_SIZE = 32 * 1024  # deletions per datagram: as many as fit

_NFGEN = struct.Struct("=BBH")  # nfgenmsg: family, version, res_id (network order)
_BE16 = struct.Struct(">H")
_BE32 = struct.Struct(">I")


class CtnetlinkError(NetlinkError):
    """The kernel refused a conntrack request (the message says which errno)."""


@dataclass(frozen=True)
class Entry:
    """One conntrack entry, as much of it as ending flows needs."""

    family: int
    proto: int
    src: str  # the original direction: as the flow's first packet came
    dst: str
    sport: int | None
    dport: int | None
    reply_dst: str  # where the answers go: the address the flow was NATed to, or its own
    tcp_state: int | None
    id: int | None
    reply: bytes  # the CTA_TUPLE_REPLY attribute as dumped, to name the entry again
    zone: bytes  # the CTA_ZONE attribute as dumped (empty: none)

    @property
    def finished(self) -> bool:
        """A TCP connection that is over (TIME_WAIT or CLOSE): nothing flows to move."""
        return self.proto == socket.IPPROTO_TCP and self.tcp_state in FINISHED


def _attributes(data: bytes, offset: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
    """(type, payload, the whole attribute) of each netlink attribute in `data`."""
    while offset + ATTRIBUTE.size <= len(data):
        length, kind = ATTRIBUTE.unpack_from(data, offset)
        if length < ATTRIBUTE.size or offset + length > len(data):
            return
        yield (
            kind & NLA_TYPE_MASK,
            data[offset + ATTRIBUTE.size : offset + length],
            data[offset : offset + length],
        )
        offset += (length + 3) & ~3


def _message(kind: int, flags: int, seq: int, family: int, body: bytes) -> bytes:
    payload = _NFGEN.pack(family, 0, 0) + body
    msg_type = (NFNL_SUBSYS_CTNETLINK << 8) | kind
    return message(msg_type, flags, seq, payload)


def dump_request(address: str | None, seq: int, family: int | None = None) -> bytes:
    """A dump of the entries whose reply goes to `address` (filtered by the kernel), or of
    every entry of `family` when `address` is None."""
    if address is None:
        if family is None:
            raise ValueError("an unfiltered dump needs a family")
        return _message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, family, b"")
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    kind = CTA_IP_V4_DST if ip.version == 4 else CTA_IP_V6_DST
    ip_part = attribute(CTA_TUPLE_IP | NLA_F_NESTED, attribute(kind, ip.packed))
    reply = attribute(CTA_TUPLE_REPLY | NLA_F_NESTED, ip_part)
    flags = attribute(
        CTA_FILTER | NLA_F_NESTED,
        attribute(CTA_FILTER_REPLY_FLAGS, struct.pack("=I", CTA_FILTER_FLAG_IP_DST)),
    )
    return _message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, family, reply + flags)


def delete_request(entry: Entry, seq: int) -> bytes:
    """The deletion of `entry`, by its reply tuple and its id."""
    body = entry.reply + entry.zone
    if entry.id is not None:
        body += attribute(CTA_ID, _BE32.pack(entry.id))
    return _message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, entry.family, body)


def _tuple(data: bytes) -> tuple[str | None, str | None, int | None, int | None, int | None]:
    """(source, destination, protocol, source port, destination port) of a CTA_TUPLE_*."""
    src = dst = None
    proto = sport = dport = None
    for kind, payload, _ in _attributes(data):
        if kind == CTA_TUPLE_IP:
            for ip_kind, value, _ in _attributes(payload):
                if ip_kind in (CTA_IP_V4_SRC, CTA_IP_V6_SRC):
                    src = str(ipaddress.ip_address(value))
                elif ip_kind in (CTA_IP_V4_DST, CTA_IP_V6_DST):
                    dst = str(ipaddress.ip_address(value))
        elif kind == CTA_TUPLE_PROTO:
            for proto_kind, value, _ in _attributes(payload):
                if proto_kind == CTA_PROTO_NUM and value:
                    proto = value[0]
                elif proto_kind == CTA_PROTO_SRC_PORT and len(value) >= 2:
                    sport = _BE16.unpack_from(value)[0]
                elif proto_kind == CTA_PROTO_DST_PORT and len(value) >= 2:
                    dport = _BE16.unpack_from(value)[0]
    return src, dst, proto, sport, dport


def _tcp_state(data: bytes) -> int | None:
    for kind, payload, _ in _attributes(data):
        if kind == CTA_PROTOINFO_TCP:
            for tcp_kind, value, _ in _attributes(payload):
                if tcp_kind == CTA_PROTOINFO_TCP_STATE and value:
                    return value[0]
    return None


def finished(payload: bytes, start: int = 0, end: int | None = None) -> bool:
    """Whether a dump's message (``payload[start:end]``, after its nlmsghdr) is of a
    finished TCP connection, read in place without parsing the rest: most entries of a
    busy NAT box are, and they are skipped at this cost only."""
    end = len(payload) if end is None else end
    offset = start + _NFGEN.size
    unpack = ATTRIBUTE.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(payload, offset)
        if length < 4:
            return False
        if kind & NLA_TYPE_MASK == CTA_PROTOINFO:
            inner, stop = offset + 4, offset + length
            while inner + 4 <= stop:  # CTA_PROTOINFO_TCP, then its CTA_PROTOINFO_TCP_STATE
                size, what = unpack(payload, inner)
                if size < 4:
                    return False
                if what & NLA_TYPE_MASK == CTA_PROTOINFO_TCP:
                    state_at, tcp_end = inner + 4, inner + size
                    while state_at + 4 <= tcp_end:
                        field_size, field = unpack(payload, state_at)
                        if field & NLA_TYPE_MASK == CTA_PROTOINFO_TCP_STATE and field_size > 4:
                            return payload[state_at + 4] in FINISHED
                        if field_size < 4:
                            return False
                        state_at += (field_size + 3) & ~3
                    return False
                inner += (size + 3) & ~3
            return False
        offset += (length + 3) & ~3
    return False


def parse_entry(payload: bytes) -> Entry | None:
    """An entry from a dump's message (after its nlmsghdr), None if it lacks a tuple."""
    if len(payload) < _NFGEN.size:
        return None
    family = payload[0]
    orig = reply = None
    reply_raw = zone = b""
    state = ident = None
    for kind, value, whole in _attributes(payload, _NFGEN.size):
        if kind == CTA_TUPLE_ORIG:
            orig = _tuple(value)
        elif kind == CTA_TUPLE_REPLY:
            reply, reply_raw = _tuple(value), whole
        elif kind == CTA_PROTOINFO:
            state = _tcp_state(value)
        elif kind == CTA_ID and len(value) >= 4:
            ident = _BE32.unpack_from(value)[0]
        elif kind == CTA_ZONE:
            zone = whole
    if orig is None or reply is None:
        return None
    src, dst, proto, sport, dport = orig
    reply_dst = reply[1]
    if src is None or dst is None or proto is None or reply_dst is None:
        return None
    return Entry(family, proto, src, dst, sport, dport, reply_dst, state, ident, reply_raw, zone)


class Ctnetlink(RawNetlink):
    """One NETLINK_NETFILTER socket; blocking calls, each bounded by TIMEOUT_S."""

    def __init__(self) -> None:
        super().__init__(NETLINK_NETFILTER, TIMEOUT_S, receive_buffer=RECEIVE_SIZE)

    def answered_to(
        self, address: str, limit: int, *, filtered: bool = True, live_only: bool = True
    ) -> list[Entry]:
        """The entries whose answers go to `address` (at most `limit` of them; `live_only`:
        not those of finished TCP connections); see `batches_answered_to`."""
        found: list[Entry] = []
        for batch in self.batches_answered_to(address, filtered=filtered, live_only=live_only):
            found += batch[: limit - len(found)]
            if len(found) >= limit:
                self.close_dump()
                break
        return found

    def batches_answered_to(
        self, address: str, *, filtered: bool = True, live_only: bool = True
    ) -> Iterator[list[Entry]]:
        """The entries whose answers go to `address`, as the kernel sends them, a datagram
        at a time: each batch can be acted upon while the dump goes on (on another
        socket). IPv4 dumps are filtered by the kernel (unless `filtered` is False); IPv6
        ones are read whole and filtered here: the kernel's IPv6 address filter answers
        the opposite of what it is asked (the entries whose address differs: its
        comparison is inverted, seen on Linux 6.18), so its answer cannot be used."""
        ip = ipaddress.ip_address(address)
        if filtered and ip.version == 4:
            request = dump_request(address, self._next())
        else:
            family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            request = dump_request(None, self._next(), family)
        for batch in self._batches(request, live_only):
            yield [e for e in batch if ipaddress.ip_address(e.reply_dst) == ip]

    def every(self, family: int, limit: int, *, live_only: bool = False) -> list[Entry]:
        """Every entry of `family` (at most `limit`; `live_only`: see `answered_to`)."""
        found: list[Entry] = []
        for batch in self._batches(dump_request(None, self._next(), family), live_only):
            found += batch[: limit - len(found)]
            if len(found) >= limit:
                self.close_dump()
                break
        return found

    def close_dump(self) -> None:
        """Give up a dump half read: this socket is of no further use (the rest of the
        dump would come on it), so it is closed."""
        self._sock.close()

    def _batches(self, request: bytes, live_only: bool) -> Iterator[list[Entry]]:
        seq = sequence_of(request)
        self._sock.send(request)
        unpack = HEADER.unpack_from
        while True:
            data = self._sock.recv(RECEIVE_SIZE)
            found: list[Entry] = []
            offset = 0
            while offset + HEADER.size <= len(data):  # messages(), inlined: the hot loop
                length, kind, _, got, _ = unpack(data, offset)
                if length < HEADER.size or offset + length > len(data):
                    break
                start, end = offset + HEADER.size, offset + length
                offset += (length + 3) & ~3
                if got != seq:
                    continue
                if kind == NLMSG_DONE:
                    yield found
                    return
                if kind == NLMSG_ERROR:
                    code = error_code(data, start)
                    if code:
                        raise CtnetlinkError("conntrack dump", code)
                    yield found
                    return
                if live_only and finished(data, start, end):
                    continue
                entry = parse_entry(data[start:end])
                if entry is not None:
                    found.append(entry)
            yield found

    def delete(self, entries: list[Entry]) -> int:
        """Delete `entries`, in batches; how many the kernel deleted (one gone meanwhile,
        or replaced by a new entry for its flow, is not)."""
        deleted = 0
        batch: list[bytes] = []
        size = 0
        for entry in entries:
            request = delete_request(entry, self._next())
            if batch and size + len(request) > SEND_SIZE:
                deleted += self._send_batch(batch)
                batch, size = [], 0
            batch.append(request)
            size += len(request)
        if batch:
            deleted += self._send_batch(batch)
        return deleted

    def _send_batch(self, batch: list[bytes]) -> int:
        waiting = {sequence_of(request) for request in batch}
        self._sock.send(b"".join(batch))
        deleted = 0
        while waiting:
            for kind, got, payload in messages(self._sock.recv(RECEIVE_SIZE)):
                if got not in waiting or kind != NLMSG_ERROR:
                    continue
                waiting.discard(got)
                code = error_code(payload)
                if code == 0:
                    deleted += 1
                elif code != errno.ENOENT:
                    raise CtnetlinkError("conntrack delete", code)
        return deleted
