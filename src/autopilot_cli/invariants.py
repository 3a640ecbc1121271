"""The invariants a faulted simulation must keep, checked against a fault-free run.

``autopilot simulate --faults SPEC`` runs the same seed twice: once without faults
(``<out>/baseline``) and once with them (``<out>``). Each run leaves ``facts.json``
(:func:`collect_facts`: its ledger, the check-ins members were told succeeded,
what reached each channel's sink, posts, occurrences, alerts, lotteries, stock,
coupon codes, snapshots), read back from the tables and the sinks after the run.
:func:`check` compares the two and returns one row per invariant — whether it
held and, when it did not, examples and the injected faults nearest to them (with
the seed, what is needed to reproduce it: the same seed and spec inject the same
faults in the same places).

Faults may legitimately change *when* things happen (retries, redeliveries) and
how deliveries ended (a post recorded ``failed`` or ``uncertain``); they must
never change what the ledger says, who won, or the community's figures.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from autopilot.config.model import Config
from autopilot.timeutil import parse_iso

INVARIANTS: dict[str, str] = {
    "ledger_matches_fault_free": "the same entry ids with the same member, amount, reason and "
    "balance as the fault-free run",
    "ledger_reconciles": "reconciliation finds no mismatch",
    "no_negative_balance": "no entry leaves a balance below zero",
    "stock_never_negative": "no reward redeemed more often than its stock",
    "coupon_codes_once": "no coupon code given twice, no payout given two codes",
    "acknowledged_checkins_once": "every check-in a member was told succeeded is in the ledger "
    "exactly once",
    "occurrences_at_most_once": "every occurrence ran at most once; no post reached a "
    "channel twice",
    "lost_answers_uncertain": "a post that reached the platform is recorded published or "
    "uncertain, never failed or unresolved; every uncertain one is reported to ops",
    "reminders_at_most_once": "no member was reminded twice for one job and day",
    "lotteries_draw_once": "every draw drew once, paid each winner once, chose the same winners "
    "as the fault-free run and still verifies",
    "snapshots_match_fault_free": "the daily snapshots' figures equal the fault-free run's "
    "(delivery counts aside)",
}

# Snapshot fields that count deliveries or job outcomes: faults may change them.
SNAPSHOT_DELIVERY_FIELDS = ("posts", "reminders", "occurrences", "computed_at")
MAX_EXAMPLES = 5
NEAR_BEFORE = timedelta(minutes=30)
NEAR_AFTER = timedelta(minutes=2)


# --------------------------------------------------------------------------- #
# Facts of one run
# --------------------------------------------------------------------------- #


def collect_facts(
    runtime: Any,
    config: Config,
    summary: dict[str, Any],
    out: Path,
    acknowledged: list[dict[str, str]],
) -> dict[str, Any]:
    """What one run left behind, for :func:`check` (harness reads, never faulted)."""
    env = runtime.function_env("DispatcherFunction")
    return {
        "ledger": _ledger_rows(out / "ledger.csv"),
        "reconciled": bool(summary.get("ledger", {}).get("reconciled", False)),
        "acknowledged": acknowledged,
        "occurrences": [
            {k: o.get(k) for k in ("community", "job", "key", "status", "reason", "ran_at_utc")}
            for o in summary.get("occurrences", [])
        ],
        "posts": [
            {k: p.get(k) for k in ("community", "job", "key", "channel", "status", "text")}
            for p in summary.get("posts", [])
        ],
        "sinks": _sink_messages(config, out),
        "alerts": _alert_keys(runtime, env["SCHEDULER_TABLE"]),
        "stock": _stock(runtime, config, env["LEDGER_TABLE"]),
        "coupons": _coupons(runtime, env.get("LOTTERY_TABLE")),
        "lotteries": summary.get("lotteries", []),
        "snapshots": summary.get("snapshots", []),
    }


def _ledger_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        return [
            {
                "entry_id": row["entry_id"],
                "at_utc": row["at_utc"],
                "community": row["community_id"],
                "member": row["member_id"],
                "reason": row["reason"],
                "amount": int(row["amount"]),
                "balance_after": int(row["balance_after"]),
                "ref": row["ref"],
            }
            for row in csv.DictReader(handle)
        ]


def _sink_messages(config: Config, out: Path) -> list[dict[str, Any]]:
    """Every message that reached a sink: the config's file channels, and the local
    chat platforms' logs (``platform/*.jsonl``, see :mod:`autopilot_cli.fakeplatform`)."""
    found: list[dict[str, Any]] = []
    for community in config.communities:
        for channel in community.channels:
            if channel.type != "file":
                continue
            path = out / str(channel.options.get("path", ""))
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                found.append(
                    {
                        "sink": f"file:{community.id}/{channel.id}",
                        "key": record.get("key"),
                        "to": record.get("to"),
                        "job": record.get("job"),
                        "at_utc": record.get("at_utc"),
                        "text": record.get("text"),
                        "mentions": [],
                    }
                )
    platform_dir = out / "platform"
    if platform_dir.is_dir():
        for path in sorted(platform_dir.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                found.append({"sink": f"platform:{path.stem}", **record})
    return found


def _alert_keys(runtime: Any, table: str) -> list[str]:
    """The ops incidents opened (``ALERT#<key>`` items of the scheduler table)."""
    pages = (
        runtime.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=table,
            FilterExpression="begins_with(pk, :a)",
            ExpressionAttributeValues={":a": {"S": "ALERT#"}},
        )
    )
    keys = {item["pk"]["S"][len("ALERT#") :] for page in pages for item in page.get("Items", [])}
    return sorted(keys)


def _stock(runtime: Any, config: Config, table: str) -> list[dict[str, Any]]:
    ddb = runtime.client("dynamodb")
    rows = []
    for community in config.communities:
        for reward in community.rewards:
            limit = getattr(reward, "stock", None)
            if limit is None:
                continue
            item = ddb.get_item(
                TableName=table,
                Key={
                    "pk": {"S": f"REWARD#{community.id}#{reward.id}"},
                    "sk": {"S": "STOCK"},
                },
            ).get("Item", {})
            redeemed = int(item.get("redeemed", {}).get("N", "0"))
            rows.append(
                {
                    "community": community.id,
                    "reward": reward.id,
                    "stock": int(limit),
                    "redeemed": redeemed,
                }
            )
    return rows


def _coupons(runtime: Any, table: str | None) -> list[dict[str, Any]]:
    if not table:
        return []
    pages = (
        runtime.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=table,
            FilterExpression="begins_with(sk, :c) AND attribute_exists(given_to)",
            ExpressionAttributeValues={":c": {"S": "CODE#"}},
        )
    )
    return [
        {"pool": i["pk"]["S"], "code": i["code"]["S"], "given_to": i["given_to"]["S"]}
        for page in pages
        for i in page.get("Items", [])
    ]


# --------------------------------------------------------------------------- #
# Checking
# --------------------------------------------------------------------------- #


class _Row:
    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[tuple[str, str | None]] = []  # (text, at_utc for suspects)
        self.note = ""

    def fail(self, text: str, at_utc: str | None = None) -> None:
        self.problems.append((text, at_utc))


def check(
    baseline: dict[str, Any], faulted: dict[str, Any], faults_log: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every invariant of :data:`INVARIANTS`: held or not, with examples and suspects."""
    rows = {name: _Row(name) for name in INVARIANTS}
    _check_ledger(rows["ledger_matches_fault_free"], baseline, faulted)
    if not faulted["reconciled"]:
        rows["ledger_reconciles"].fail("reconciliation reported mismatches")
    for entry in faulted["ledger"]:
        if entry["balance_after"] < 0:
            rows["no_negative_balance"].fail(
                f"{entry['member']}: balance {entry['balance_after']} after {entry['entry_id']}",
                entry["at_utc"],
            )
    for stock in faulted["stock"]:
        if stock["redeemed"] > stock["stock"]:
            rows["stock_never_negative"].fail(
                f"{stock['community']}/{stock['reward']}: {stock['redeemed']} redeemed "
                f"of a stock of {stock['stock']}"
            )
    _check_coupons(rows["coupon_codes_once"], faulted)
    _check_acknowledged(rows["acknowledged_checkins_once"], faulted)
    _check_occurrences(rows["occurrences_at_most_once"], baseline, faulted)
    _check_uncertain(rows["lost_answers_uncertain"], faulted)
    _check_reminders(rows["reminders_at_most_once"], baseline, faulted)
    _check_lotteries(rows["lotteries_draw_once"], baseline, faulted)
    _check_snapshots(rows["snapshots_match_fault_free"], baseline, faulted)
    return [_result(row, faults_log) for row in rows.values()]


def _result(row: _Row, faults_log: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": row.name,
        "held": not row.problems,
        "checks": INVARIANTS[row.name],
    }
    if row.problems:
        out["violations"] = len(row.problems)
        out["examples"] = [text for text, _ in row.problems[:MAX_EXAMPLES]]
        suspects: list[dict[str, Any]] = []
        for _, at in row.problems[:MAX_EXAMPLES]:
            suspects += nearest_faults(faults_log, at)
        unique = {json.dumps(s, sort_keys=True): s for s in suspects}
        out["suspects"] = list(unique.values())[:10]
    return out


def nearest_faults(faults_log: list[dict[str, Any]], at_utc: str | None) -> list[dict[str, Any]]:
    """The injected faults shortly before (or just after) ``at_utc``: the likely culprits."""
    if not at_utc:
        return []
    at = parse_iso(at_utc)
    near = [
        f
        for f in faults_log
        if f["kind"] != "skew" and at - NEAR_BEFORE <= parse_iso(f["at_utc"]) <= at + NEAR_AFTER
    ]
    return near[-3:]


def _check_ledger(row: _Row, baseline: dict[str, Any], faulted: dict[str, Any]) -> None:
    def shape(entry: dict[str, Any]) -> tuple[Any, ...]:
        return (entry["member"], entry["amount"], entry["reason"], entry["balance_after"])

    before = {e["entry_id"]: e for e in baseline["ledger"]}
    after: dict[str, dict[str, Any]] = {}
    for entry in faulted["ledger"]:
        if entry["entry_id"] in after:
            row.fail(f"entry {entry['entry_id']} appears twice", entry["at_utc"])
        after[entry["entry_id"]] = entry
    for entry_id, entry in before.items():
        if entry_id not in after:
            row.fail(
                f"missing {entry['reason']} {entry['amount']:+d} of {entry['member']} "
                f"({entry['ref']}, {entry_id})",
                entry["at_utc"],
            )
        elif shape(after[entry_id]) != shape(entry):
            row.fail(
                f"{entry_id} differs: {shape(after[entry_id])} instead of {shape(entry)}",
                after[entry_id]["at_utc"],
            )
    for entry_id, entry in after.items():
        if entry_id not in before:
            row.fail(
                f"extra {entry['reason']} {entry['amount']:+d} of {entry['member']} "
                f"({entry['ref']}, {entry_id})",
                entry["at_utc"],
            )


def _check_coupons(row: _Row, faulted: dict[str, Any]) -> None:
    codes = Counter((c["pool"], c["code"]) for c in faulted["coupons"])
    refs = Counter(c["given_to"] for c in faulted["coupons"])
    for (pool, code), n in codes.items():
        if n > 1:
            row.fail(f"code {code[:4]}… of {pool} given {n} times")
    for ref, n in refs.items():
        if n > 1:
            row.fail(f"payout {ref} got {n} codes")


def _check_acknowledged(row: _Row, faulted: dict[str, Any]) -> None:
    checkins = Counter(
        (e["community"], e["member"], e["ref"].removeprefix("checkin:"))
        for e in faulted["ledger"]
        if e["reason"] == "checkin"
    )
    at_of = {
        (e["community"], e["member"], e["ref"].removeprefix("checkin:")): e["at_utc"]
        for e in faulted["ledger"]
        if e["reason"] == "checkin"
    }
    for ack in faulted["acknowledged"]:
        key = (ack["community"], ack["member"], ack["day"])
        if checkins[key] == 0:
            row.fail(
                f"{ack['member']} was told their {ack['day']} check-in succeeded; not in the ledger"
            )
    for key, n in checkins.items():
        if n > 1:
            row.fail(f"{key[1]}'s {key[2]} check-in is in the ledger {n} times", at_of[key])


def _check_occurrences(row: _Row, baseline: dict[str, Any], faulted: dict[str, Any]) -> None:
    keys = Counter((o["community"], o["job"], o["key"]) for o in faulted["occurrences"])
    for key, n in keys.items():
        if n > 1:
            row.fail(f"occurrence {'/'.join(key)} recorded {n} times")
    _duplicates(row, faulted, baseline, lambda m: not _is_reminder(m))


def _is_reminder(message: dict[str, Any]) -> bool:
    return bool(message.get("mentions")) or str(message.get("key") or "").startswith("rem")


def _duplicates(
    row: _Row,
    faulted: dict[str, Any],
    baseline: dict[str, Any],
    which: Callable[[dict[str, Any]], bool],
) -> None:
    """Messages that reached a sink more often than once (by key), or (sinks that
    carry no key: chat platforms) more often on a day than the same text did
    fault-free."""

    def identity(m: dict[str, Any]) -> tuple[Any, ...]:
        if m.get("key"):
            return ("key", m["sink"], m["key"], m.get("to"))
        # The same text on another day is another message (a daily alert, a digest).
        day = str(m.get("at_utc") or "")[:10]
        return ("text", m["sink"], m.get("text"), tuple(m.get("mentions") or ()), day)

    seen = Counter(identity(m) for m in faulted["sinks"] if which(m))
    allowed = Counter(identity(m) for m in baseline["sinks"] if which(m))
    at_of = {identity(m): m.get("at_utc") for m in faulted["sinks"]}
    for key, n in seen.items():
        # A keyed message (file sinks) once; a platform message no more often than
        # the same text went out fault-free (two days may post the same text).
        limit = 1 if key[0] == "key" else max(1, allowed.get(key, 0))
        if n > limit:
            row.fail(f"{key[1]}: {str(key[2])[:60]!r} delivered {n} times", at_of.get(key))


def _check_uncertain(row: _Row, faulted: dict[str, Any]) -> None:
    # What reached each channel's own sink: file channels by key, platforms by text.
    reached: set[tuple[str, str]] = set()
    for message in faulted["sinks"]:
        sink = str(message["sink"]).split(":", 1)[1].replace(".", "/", 1)
        reached.add((sink, str(message.get("key") or message.get("text"))))
    for post in faulted["posts"]:
        status = post.get("status")
        ref = f"{post['community']}:{post['job']}:{post['key']}"
        channel = f"{post['community']}/{post['channel']}"
        landed = (channel, str(post.get("text"))) in reached or any(
            sink == channel and key.startswith(ref) for sink, key in reached
        )
        if status in (None, "sending", "claimed"):
            row.fail(f"post {ref} to {post['channel']} left unresolved ({status})")
        elif status == "failed" and landed:
            row.fail(f"post {ref} reached {post['channel']} but is recorded failed")
    # Reported: the incident is recorded, or an alert naming it reached a channel.
    alerts = " ".join(faulted["alerts"])
    heard = [str(m.get("text") or "") for m in faulted["sinks"]]
    for occ in faulted["occurrences"]:
        if occ["status"] != "uncertain":
            continue
        incident = f"#{occ['job']}#{occ['key']}"
        told = any(occ["job"] in text and occ["key"] in text for text in heard)
        if incident not in alerts and not told:
            row.fail(
                f"uncertain occurrence {occ['community']}/{occ['job']}@{occ['key']} not "
                "reported to ops",
                occ.get("ran_at_utc"),
            )


def _check_reminders(row: _Row, baseline: dict[str, Any], faulted: dict[str, Any]) -> None:
    """Direct reminders (file sinks carry their key) at most once; in a chat group a
    member mentioned on a day no more often than fault-free (two reminder jobs may
    each mention them once)."""

    last_at: dict[tuple[str, str, str], str] = {}

    def mentioned(facts: dict[str, Any]) -> Counter[tuple[str, str, str]]:
        found: Counter[tuple[str, str, str]] = Counter()
        for message in facts["sinks"]:
            if _is_reminder(message) and not message.get("key"):
                day = str(message.get("at_utc") or "")[:10]
                for member in message.get("mentions") or []:
                    found[(message["sink"], day, str(member))] += 1
                    last_at[(message["sink"], day, str(member))] = str(message.get("at_utc"))
        return found

    allowed = mentioned(baseline)
    for key, n in mentioned(faulted).items():
        if n > max(1, allowed.get(key, 0)):
            row.fail(f"{key[2]} mentioned {n} times in {key[0]} on {key[1]}", last_at[key])
    keys = Counter(
        (m["sink"], m["key"], m.get("to"))
        for m in faulted["sinks"]
        if _is_reminder(m) and m.get("key")
    )
    at_of = {(m["sink"], m.get("key"), m.get("to")): m.get("at_utc") for m in faulted["sinks"]}
    for key, n in keys.items():
        if n > 1:
            row.fail(
                f"reminder {key[1]} to {key[2] or 'the group'} delivered {n} times", at_of[key]
            )


def _check_lotteries(row: _Row, baseline: dict[str, Any], faulted: dict[str, Any]) -> None:
    before = {(d["community"], d["draw_id"]): d for d in baseline["lotteries"]}
    prizes = Counter(
        (e["community"], e["member"], e["ref"])
        for e in faulted["ledger"]
        if e["reason"] == "lottery_prize"
    )
    for prize, n in prizes.items():
        if n > 1:
            row.fail(f"{prize[1]} paid {n} times for {prize[2]}")
    for draw in faulted["lotteries"]:
        key = (draw["community"], draw["draw_id"])
        reference = before.get(key)
        if reference is None:
            row.fail(f"draw {'/'.join(key)} does not exist fault-free")
            continue
        if draw["state"] != reference["state"]:
            row.fail(f"draw {'/'.join(key)} is {draw['state']}, fault-free {reference['state']}")
        if draw["verified"] is not reference["verified"]:
            row.fail(f"draw {'/'.join(key)} verified={draw['verified']}")
        if _winners(draw) != _winners(reference):
            row.fail(
                f"draw {'/'.join(key)} chose {_winners(draw)}, fault-free {_winners(reference)}"
            )
        if draw.get("entrants_hash") != reference.get("entrants_hash"):
            row.fail(f"draw {'/'.join(key)} had other entrants than fault-free")


def _winners(draw: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((w["member"], w["prize"]) for w in draw.get("winners", []))


def _check_snapshots(row: _Row, baseline: dict[str, Any], faulted: dict[str, Any]) -> None:
    def figures(snapshot: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in snapshot.items() if k not in SNAPSHOT_DELIVERY_FIELDS}

    before = {(s["community"], s["day"]): figures(s) for s in baseline["snapshots"]}
    after = {(s["community"], s["day"]): figures(s) for s in faulted["snapshots"]}
    for key in sorted(set(before) | set(after)):
        if key not in after:
            row.fail(f"no snapshot of {key[0]} for {key[1]}")
        elif key not in before:
            row.fail(f"a snapshot of {key[0]} for {key[1]} the fault-free run did not write")
        elif after[key] != before[key]:
            fields = sorted(
                k
                for k in set(after[key]) | set(before[key])
                if after[key].get(k) != before[key].get(k)
            )
            row.fail(f"snapshot {key[0]}/{key[1]} differs in {', '.join(fields)}")


# --------------------------------------------------------------------------- #
# The faulted run
# --------------------------------------------------------------------------- #


def run_with_faults(config_path: str, *, faults: Any, **kwargs: Any) -> Any:
    """Run fault-free into ``<out>/baseline`` (quietly), then with ``faults`` into
    ``<out>``; check the invariants and add them to the faulted run's summary."""
    from autopilot_cli.simulate import _run

    out = Path(kwargs["out_dir"])
    log: TextIO | None = kwargs.get("log")
    quiet = {**kwargs, "out_dir": str(out / "baseline"), "log": None, "progress": None}
    _run(config_path, injector_spec=None, **quiet)
    faulted = _run(config_path, injector_spec=faults, **kwargs)
    base_facts = json.loads((out / "baseline" / "facts.json").read_text(encoding="utf-8"))
    facts = json.loads((out / "facts.json").read_text(encoding="utf-8"))
    faults_log = [
        json.loads(line)
        for line in (out / "faults.jsonl").read_text(encoding="utf-8").splitlines()
        if line
    ]
    results = check(base_facts, facts, faults_log)
    summary = faulted.summary
    summary["invariants"] = results
    summary["invariants_held"] = all(r["held"] for r in results)
    summary["baseline"] = "baseline/summary.json"
    (out / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    if log is not None:
        print_invariants(summary, log)
    return faulted


def print_invariants(summary: dict[str, Any], out: TextIO) -> None:
    """The faults injected and the invariants' verdicts, readable."""
    faults = summary.get("faults", {})
    injected = ", ".join(f"{k} {v}" for k, v in faults.get("injected", {}).items()) or "none"
    recovery = ", ".join(f"{k} {v}" for k, v in faults.get("recovery", {}).items()) or "none"
    out.write(
        f"\nFaults (seed {summary['seed']}, {faults.get('spec')}): {injected}\n"
        f"Recovery: {recovery}\n"
    )
    for row in summary.get("invariants", []):
        mark = "held  " if row["held"] else "BROKEN"
        out.write(f"  {mark} {row['name']}: {row['checks']}\n")
        for example in row.get("examples", []):
            out.write(f"           {example}\n")
        for suspect in row.get("suspects", [])[:3]:
            out.write(
                f"           near fault: {suspect['kind']} {suspect.get('where', '')} in "
                f"{suspect.get('function')} at {suspect['at_utc']}\n"
            )
    if not summary.get("invariants_held", True):
        out.write(
            f"Reproduce: autopilot simulate … --seed {summary['seed']} --faults "
            f"'{faults.get('spec')}' (same seed and spec, same faults)\n"
        )
