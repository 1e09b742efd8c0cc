"""requirements.lock is what the tests run on: every runtime dependency of pyproject.toml
is locked, and each locked version is the one installed (the Makefile installs with the
lock as constraints)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, pinned = line.partition("==")
            assert sep and pinned, f"requirements.lock: {line!r} is not NAME==VERSION"
            pins[normal(name)] = pinned
    return pins


def test_every_runtime_dependency_is_locked() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {normal(re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0])
             for dep in project["dependencies"]}
    assert names - set(locked()) == set(), "run make lock"


def test_the_locked_versions_are_installed() -> None:
    wrong = {}
    for name, pinned in locked().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != pinned:
            wrong[name] = f"{installed} installed, {pinned} locked"
    assert wrong == {}, "install with make install-test (it uses the lock as constraints)"
