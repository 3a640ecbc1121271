"""Reference-counted class patches restore exactly what was there before."""

from __future__ import annotations

import pytest

from autopilot_cli.local import (
    fast_dynamodb,
    fast_items,
    fast_queries,
    fast_serialize,
    fast_transactions,
)
from autopilot_cli.local.patching import ClassPatches


class Base:
    def inherited(self) -> str:
        return "base"


class Child(Base):
    def own(self) -> str:
        return "own"

    @classmethod
    def make(cls) -> str:
        return "make"


def test_patches_apply_once_and_restore_own_and_inherited_attributes():
    original_own = vars(Child)["own"]
    original_make = vars(Child)["make"]
    installs: list[int] = []
    patches = ClassPatches(
        "demo",
        (Child, "own", lambda self: "patched"),
        (Child, "inherited", lambda self: "patched"),
        (Child, "make", classmethod(lambda cls: "patched")),
        on_install=lambda: installs.append(1),
    )
    with patches.active():
        patches.install()  # nested: counted, applied once
        assert (Child().own(), Child().inherited(), Child.make()) == ("patched",) * 3
        patches.uninstall()
        assert patches.is_installed() and Child().own() == "patched"
    assert not patches.is_installed()
    assert vars(Child)["own"] is original_own
    assert vars(Child)["make"] is original_make  # the same classmethod object
    assert "inherited" not in vars(Child)  # inheritance is back
    assert Child().inherited() == "base"
    assert installs == [1]
    with patches.active():
        pass
    assert installs == [1, 1]  # each first install runs the hook


def test_an_uninstall_without_install_is_an_error():
    patches = ClassPatches("demo", (Child, "own", lambda self: "x"))
    with pytest.raises(RuntimeError, match=r"demo\.uninstall"):
        patches.uninstall()


@pytest.mark.parametrize(
    "module", [fast_dynamodb, fast_items, fast_queries, fast_serialize, fast_transactions]
)
def test_every_fast_path_restores_moto_when_uninstalled(module):
    saved = [(o, a, vars(o).get(a)) for o, a, _ in module._patches._patches]
    module.install()
    module.install()
    module.uninstall()
    assert module.is_installed()
    module.uninstall()
    assert not module.is_installed()
    assert [(o, a, vars(o).get(a)) for o, a, _ in module._patches._patches] == saved
