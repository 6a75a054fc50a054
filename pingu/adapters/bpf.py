"""Classic BPF for socket filters: a tiny assembler (symbolic steps with jump labels, the
only form a reader can check against the packet layout) and SO_ATTACH_FILTER. The prober's
echo and ARP filters and the netlink monitor's filter are written with it; packets pingu
does not want never leave the kernel."""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Opcodes of <linux/filter.h>.
BPF_LD, BPF_LDX, BPF_JMP, BPF_RET = 0x00, 0x01, 0x05, 0x06
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_ABS, BPF_IND, BPF_MSH = 0x20, 0x40, 0xA0
BPF_JEQ, BPF_JSET = 0x10, 0x40
BPF_K = 0x00
ACCEPT_BYTES = 0x40000  # "keep the whole packet"

_SOCK_FILTER = struct.Struct("=HBBI")


@dataclass(frozen=True)
class Insn:
    """One ``struct sock_filter``: opcode, jump-if-true, jump-if-false, constant."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0


# Symbolic program: ("ld", size, offset) | ("ldx_ihl",) | ("ldi", size, offset)
# | ("jeq"|"jset", k, label_true, label_false) | ("ret", k) | ("label", name)
_Step = tuple[object, ...]


def assemble(steps: Sequence[_Step]) -> tuple[Insn, ...]:
    """Turn symbolic steps into instructions, resolving jump labels."""
    labels: dict[object, int] = {}
    position = 0
    for step in steps:
        if step[0] == "label":
            labels[step[1]] = position
        else:
            position += 1
    sizes: Mapping[object, int] = {4: BPF_W, 2: BPF_H, 1: BPF_B}
    program: list[Insn] = []
    for step in steps:
        op, *args = step
        here = len(program)
        if op == "label":
            continue
        if op == "ld":
            program.append(Insn(BPF_LD | sizes[args[0]] | BPF_ABS, k=_int(args[1])))
        elif op == "ldi":
            program.append(Insn(BPF_LD | sizes[args[0]] | BPF_IND, k=_int(args[1])))
        elif op == "ldx_ihl":
            program.append(Insn(BPF_LDX | BPF_B | BPF_MSH, k=0))
        elif op in ("jeq", "jset"):
            code = BPF_JMP | (BPF_JEQ if op == "jeq" else BPF_JSET) | BPF_K
            jt = labels[args[1]] - here - 1
            jf = labels[args[2]] - here - 1
            program.append(Insn(code, jt, jf, _int(args[0])))
        elif op == "ret":
            program.append(Insn(BPF_RET | BPF_K, k=_int(args[0])))
        else:
            raise ValueError(f"unknown BPF step {step!r}")
    return tuple(program)


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def pack_filter(program: Sequence[Insn]) -> bytes:
    """The program as the array of ``struct sock_filter`` a ``sock_fprog`` points to."""
    return b"".join(_SOCK_FILTER.pack(i.code, i.jt, i.jf, i.k) for i in program)


SO_ATTACH_FILTER = 26


def attach_filter(sock: socket.socket, program: Sequence[Insn]) -> None:
    """SO_ATTACH_FILTER: a ``struct sock_fprog`` pointing at the program's instructions."""
    code = pack_filter(program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("@HP", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
