"""The lab's real programs (pingu.lab.clients) as a test holds them: started through
`Programs`, their logs printed and every one closed at teardown (what a client left
cleared, the lab's addressing put back), and proven stopped."""

from __future__ import annotations

from typing import TypeVar

from pingu.lab import KernelRA, LabError
from pingu.lab.clients import Program

P = TypeVar("P", bound=Program)


class Programs:
    """The test's servers and clients, closed in the reverse order of their starts."""

    def __init__(self) -> None:
        self.handles: list[Program | KernelRA] = []

    def __call__(self, handle: P) -> P:
        self.handles.append(handle)
        handle.start()
        return handle

    def kernel(self, handle: KernelRA) -> KernelRA:
        self.handles.append(handle)
        handle.start()
        return handle

    def close(self) -> None:
        for handle in reversed(self.handles):
            print(f"===== {handle!r}\n{handle.log()}")
        problems = []
        for handle in reversed(self.handles):
            try:
                handle.close()
            except LabError as exc:
                problems.append(str(exc))
        assert problems == []
        assert [h for h in self.handles if isinstance(h, Program) and h.running] == []
