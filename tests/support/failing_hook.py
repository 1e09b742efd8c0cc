"""A hook that fails at the start of a call (tests: the call must go on)."""


def start(call: object) -> None:
    raise ZeroDivisionError("a hook with a bug")


def stop(call: object) -> None:
    raise ZeroDivisionError("a hook with a bug, again")
