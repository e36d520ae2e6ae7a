"""A bound on the objects a pickle builds, checked on its opcodes before anything of it is loaded.

A pickle may refer to one object many times (its memo): 64 levels of a tuple holding the same tuple twice
take 500 bytes and have 2**64 paths, and hashing such a tuple as a dict key, or printing it, never ends.
``check_expansion`` walks the opcodes (nothing is built or called) and sizes every object with each
reference counted: the cost of anything that walks the object without sharing.
"""
import pickletools
from typing import BinaryIO

MAX_PICKLE_OBJECTS = 10_000_000  # a state dict takes about 40 per tensor: 120,000 for res2net200

_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GETS = {"GET", "BINGET", "LONG_BINGET"}
_IN_PLACE = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}  # grow the object below them


class _Object:
    """An object the pickle would build; ``size``: its parts with every shared reference counted."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


def check_expansion(stream: BinaryIO) -> None:
    """Read one pickle from ``stream`` (up to its STOP) and raise ``ValueError`` if an object in it has more
    than ``MAX_PICKLE_OBJECTS`` parts once shared references are expanded. Malformed opcodes raise too."""
    stack, marks, memo = [], [], {}
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name == "STOP":
            return
        if name == "MARK":
            marks.append(len(stack))
        elif name in _MEMO_PUTS or name == "MEMOIZE":
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in _MEMO_GETS:
            stack.append(memo[arg])
        elif name == "DUP":
            stack.append(stack[-1])
        else:
            before = op.stack_before
            taken = []
            if pickletools.markobject in before:
                start = marks.pop()
                taken, stack[start:] = stack[start:], []
                below = before.index(pickletools.markobject)
            else:
                below = len(before)
            if below:
                taken, stack[-below:] = stack[-below:] + taken, []
            if not op.stack_after:
                continue
            if name in _IN_PLACE:
                target = taken[0]
                target.size += sum(t.size for t in taken[1:])
            else:
                target = _Object(1 + sum(t.size for t in taken))
            if target.size > MAX_PICKLE_OBJECTS:
                raise ValueError(f"its shared references expand to more than {MAX_PICKLE_OBJECTS} objects "
                                 "(a pickle bomb)")
            stack.append(target)
    raise ValueError("pickle ends before its STOP opcode")
