"""Identifiers for calls and recordings: 32 hex digits, unique, made without a system call
each (a random generator seeded once from the OS).  Not for secrets: web sessions and
tokens use ``secrets``."""

from __future__ import annotations

import os
import random

_random = random.Random(os.urandom(32))


def new_id() -> str:
    return f"{_random.getrandbits(128):032x}"  # one C call: atomic under the GIL


def reseed() -> None:
    """After a fork, so parent and child never make the same ids (the child has one
    thread then: nothing to lock)."""
    _random.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reseed)
