"""Cheaper moto response serialisation for local runs (same bytes as stock moto).

moto 5.2.5 serialises a response by walking the operation's output shape and,
for every member of every structure, asking a chain of alias providers where
the value might live on the result object (``key``, its ``snake_case`` form,
shape-name and class-prefix aliases…). For DynamoDB that walk visits all ten
members of every ``AttributeValue`` of every item returned, recomputing the
same alias list each time: a ``Query`` page of 40 items cost ~6 ms of alias
lookups, a third of a simulated check-in.

The aliases depend only on the member key, its shape, its parent shape and the
result object's class (``ExplicitAlias`` reads a ``Meta`` class, which plain
containers never have). While installed, :class:`XFormedAttributePicker`
memoises the alias list for plain ``dict``/``list`` results under exactly those
inputs and computes it the stock way for everything else, so responses are
byte-identical (``tests/integration/test_fast_serialize.py`` compares them with
stock moto across DynamoDB, SQS and SNS operations). Installed by
:class:`~autopilot_cli.local.runtime.LocalRuntime` with the other fast paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from moto.core.serialize import (
    DEFAULT_ALIAS_PROVIDERS,
    AttributePickerContext,
    BaseJSONSerializer,
    XFormedAttributePicker,
)
from moto.core.utils import MISSING, get_value

from autopilot_cli.local.patching import ClassPatches

_original = XFormedAttributePicker.get_possible_keys
_original_member = BaseJSONSerializer._serialize_structure_member
_PLAIN = (dict, list)
_cache: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _shape_key(shape: Any) -> tuple[Any, ...]:
    if shape is None:
        return (None,)
    parent = getattr(shape, "parent", None)
    return (
        shape.name,
        shape.type_name,
        shape.serialization.get("name"),
        None if parent is None else (parent.name, parent.type_name),
    )


def _memoised(
    service: str | None, obj: Any, key: str, shape: Any, compute: Callable[[], Iterable[str]]
) -> tuple[str, ...]:
    """The alias list for ``key`` on a plain ``obj``: stock moto's, computed once per inputs."""
    cache_key = (service, type(obj), key, _shape_key(shape))
    keys = _cache.get(cache_key)
    if keys is None:
        keys = _cache[cache_key] = tuple(compute())
    return keys


def _possible_keys(self: XFormedAttributePicker, context: AttributePickerContext) -> Any:
    obj = context.obj
    if type(obj) not in _PLAIN or self.alias_providers is not DEFAULT_ALIAS_PROVIDERS:
        return _original(self, context)
    service = context.service_model.service_name if context.service_model else None
    return _memoised(service, obj, context.key, context.shape, lambda: _original(self, context))


def _structure_member(
    self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
) -> None:
    """JSON protocols, plain ``dict`` results: pick the member from the memoised aliases.

    Stock moto builds an :class:`AttributePickerContext` (with the joined key
    path) per member only to ask the picker; for a plain dict with a default
    picker and no response transformers the answer is the first alias present,
    which is what this computes, without the context.
    """
    picker = self._value_picker
    if (
        type(value) is not dict
        or type(picker) is not XFormedAttributePicker
        or picker.response_transformers
        or picker.alias_providers is not DEFAULT_ALIAS_PROVIDERS
    ):
        _original_member(self, serialized, value, shape, key)
        return
    keys = _memoised(
        self.service_model.service_name,
        value,
        key,
        shape,
        lambda: _original(
            picker,
            AttributePickerContext(
                obj=value,
                key=key,
                shape=shape,
                operation_model=self.operation_model,
                service_model=self.service_model,
                key_path=".".join(self.path),
            ),
        ),
    )
    member_value = None
    for possible in keys:
        found = get_value(value, possible, MISSING)
        if found is not MISSING:
            member_value = found
            break
    if member_value is not None:
        self._serialize(serialized, member_value, shape, key)


_patches = ClassPatches(
    "fast_serialize",
    (XFormedAttributePicker, "get_possible_keys", _possible_keys),
    (BaseJSONSerializer, "_serialize_structure_member", _structure_member),
)
#: Patch moto's attribute picker (reference-counted; see :mod:`.patching`).
install = _patches.install
#: Undo one :func:`install`.
uninstall = _patches.uninstall
#: Whether the fast path is active.
is_installed = _patches.is_installed
#: Use the fast path inside a ``with`` block.
fast_serialize = _patches.active
