"""The local runtime's linear item construction builds exactly the items stock moto builds."""

from __future__ import annotations

import random

import pytest
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

from autopilot_cli.local import fast_items


def _attrs(rng: random.Random, n: int, big: int = 0) -> dict:
    attrs: dict = {}
    for i in range(n):
        kind = rng.randrange(7)
        key = f"a{i}" if i % 5 else f"属性{i}"
        if kind == 0:
            attrs[key] = {"S": "x" * rng.randrange(big or 40) + "中"}
        elif kind == 1:
            attrs[key] = {"N": str(rng.randrange(-(10**30), 10**30))}
        elif kind == 2:
            attrs[key] = {"B": bytes(rng.randrange(256) for _ in range(rng.randrange(30)))}
        elif kind == 3:
            attrs[key] = {"SS": [f"s{j}" for j in range(rng.randrange(1, 5))]}
        elif kind == 4:
            attrs[key] = {"M": {"k": {"L": [{"N": "1.5"}, {"BOOL": True}, {"NULL": True}]}}}
        elif kind == 5:
            attrs[key] = {"L": [{"S": "y" * rng.randrange(big or 10)}]}
        else:
            attrs[key] = {"NS": ["1", "2.5"]}
    return attrs


def _build(attrs: dict) -> object:
    try:
        item = Item(DynamoType({"S": "h"}), DynamoType({"S": "r"}), attrs)
    except ItemSizeTooLarge as error:
        return ("too large", str(error))
    assert type(item.attrs) is LimitedSizeDict
    return (list(item.attrs.items()), item.hash_key, item.range_key)


@pytest.mark.parametrize("seed", range(6))
def test_items_are_built_exactly_like_stock_moto(seed):
    rng = random.Random(seed)
    cases = [_attrs(rng, rng.randrange(0, 40)) for _ in range(40)]
    # Around moto's 405,000-byte limit: some just under, some just over.
    cases += [_attrs(random.Random(seed * 100 + k), 12, big=140_000) for k in range(20)]
    stock = [_build(attrs) for attrs in cases]
    with fast_items.fast_items():
        assert fast_items.is_installed()
        fast = [_build(attrs) for attrs in cases]
    assert not fast_items.is_installed()
    assert fast == stock
    outcomes = {result[0] == "too large" for result in stock}
    assert outcomes == {True, False}  # both sides of the limit were exercised


def test_the_limit_is_the_same_to_the_byte():
    def attrs(total: int) -> dict:
        # key "k" (1 byte) + "pad" (3 bytes) + string value bytes
        return {"k": {"S": "v"}, "pad": {"S": "x" * (total - 1 - 1 - 3)}}

    for total in (404_999, 405_000, 405_001):
        stock = _build(attrs(total))
        with fast_items.fast_items():
            fast = _build(attrs(total))
        assert fast == stock
    assert _build(attrs(405_001))[0] == "too large"
    assert _build(attrs(405_000))[0] != "too large"


def test_later_writes_keep_moto_checks():
    with fast_items.fast_items():
        item = Item(DynamoType({"S": "h"}), None, {"a": {"S": "x" * 400_000}})
    with pytest.raises(ItemSizeTooLarge):
        item.attrs["b"] = DynamoType({"S": "y" * 10_000})
