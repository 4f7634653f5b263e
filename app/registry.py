"""Plug-in registries: one per family (captioners, novelty scorers, speech detectors, job
backends, ...). A new member is one module and one line in its family's registry.

A registry maps names to ``"package.module:attribute"`` targets, imported on first use, so
listing the members of a family imports none of them (nothing heavy at import time). A member
may name the distributions it needs; while one is missing the member is not listed, and asking
for it by name says which package to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from app.errors import PluginUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class Member:
    """Where a registered member lives and what it needs."""

    target: str
    """``"package.module:attribute"``: the object the registry hands out for this name."""
    requires: Mapping[str, str] = field(default_factory=dict)
    """Importable module -> the pip distribution that provides it; all must be installed."""

    def missing(self) -> list[str]:
        """The distributions this member needs that are not installed."""
        return [dist for module, dist in self.requires.items() if not _importable(module)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


class Registry(Mapping[str, T], Generic[T]):
    """The named members of one plug-in family.

    As a mapping it holds only the installed members (``list(registry)``, ``name in
    registry``, ``registry[name]``); :meth:`load` and :meth:`check` explain a name that is
    unknown or not installed.

    Args:
        family: What the members are, for messages ("novelty scorer").
        members: Name -> target string or :class:`Member`.
    """

    def __init__(self, family: str, members: Mapping[str, str | Member]) -> None:
        self.family = family
        self.members: dict[str, Member] = {
            name: m if isinstance(m, Member) else Member(m) for name, m in members.items()
        }

    def __iter__(self) -> Iterator[str]:
        return (name for name, member in self.members.items() if not member.missing())

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        member = self.members.get(name) if isinstance(name, str) else None
        return member is not None and not member.missing()

    def __getitem__(self, name: str) -> T:
        if name not in self:
            raise KeyError(name)
        return self.load(name)

    def known(self, name: str) -> str:
        """Return ``name`` if it is a member, installed or not.

        Raises:
            PluginUnavailable: Unknown name (the message lists the installed ones).
        """
        if name not in self.members:
            valid = ", ".join(self) or "none installed"
            raise PluginUnavailable(f"unknown {self.family} {name!r}; choose one of: {valid}")
        return name

    def check(self, name: str) -> str:
        """Return ``name`` if it is an installed member.

        Raises:
            PluginUnavailable: Unknown name (the message lists the installed ones), or a member
                whose packages are missing (the message says what to install).
        """
        if missing := self.members[self.known(name)].missing():
            raise PluginUnavailable(
                f"the {self.family} {name!r} needs {', '.join(missing)}, which is not "
                f"installed: run 'pip install {' '.join(missing)}'"
            )
        return name

    def load(self, name: str) -> T:
        """Import and return the member called ``name``.

        Raises:
            PluginUnavailable: As :meth:`check`.
        """
        module, _, attribute = self.members[self.check(name)].target.partition(":")
        member: T = getattr(importlib.import_module(module), attribute)
        return member
