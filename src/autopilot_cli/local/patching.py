"""Reference-counted class patches: how the local runtime's moto fast paths install.

Each fast path (``fast_dynamodb``, ``fast_items``, ``fast_queries``,
``fast_serialize``, ``fast_transactions``) replaces a few attributes of moto or
botocore classes. Several runtimes (and tests) may be active in one process, so
installation is reference counted: the first :meth:`ClassPatches.install` applies
the patches, the last :meth:`ClassPatches.uninstall` restores exactly what was
there before (an attribute that was inherited is deleted again, so inheritance is
back). An ``uninstall`` without an ``install`` is a bug and raises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ClassPatches"]

_ABSENT = object()  # the attribute was not in the class's own __dict__ (inherited)


class ClassPatches:
    """A set of ``(owner, attribute, replacement)`` patches installed together."""

    def __init__(
        self,
        name: str,
        *patches: tuple[Any, str, Any],
        on_install: Callable[[], None] | None = None,
    ) -> None:
        """``on_install`` runs (under the lock) each time the patches are applied."""
        self._name = name
        self._patches = patches
        self._on_install = on_install
        self._lock = threading.Lock()
        self._count = 0
        self._saved: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        """Apply the patches if this is the first install; count it either way."""
        with self._lock:
            if self._count == 0:
                if self._on_install is not None:
                    self._on_install()
                self._saved = [
                    (owner, attribute, vars(owner).get(attribute, _ABSENT))
                    for owner, attribute, _ in self._patches
                ]
                for owner, attribute, replacement in self._patches:
                    setattr(owner, attribute, replacement)
            self._count += 1

    def uninstall(self) -> None:
        """Undo one :meth:`install`; the originals are back after the last one."""
        with self._lock:
            if self._count == 0:
                raise RuntimeError(f"{self._name}.uninstall() called without install()")
            self._count -= 1
            if self._count == 0:
                for owner, attribute, original in reversed(self._saved):
                    if original is _ABSENT:
                        delattr(owner, attribute)
                    else:
                        setattr(owner, attribute, original)
                self._saved = []

    def is_installed(self) -> bool:
        """Whether the patches are applied."""
        return self._count > 0

    @contextmanager
    def active(self) -> Iterator[None]:
        """:meth:`install` on entry, :meth:`uninstall` on exit."""
        self.install()
        try:
            yield
        finally:
            self.uninstall()
