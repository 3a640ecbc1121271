"""A fault campaign: many seeds of ``autopilot simulate --faults``, one table.

``make faults`` runs ``python -m autopilot_cli.campaign``: each seed is its own
``autopilot simulate --faults SPEC --local-platform`` process (two at a time by
default), on ``config/faults.yaml`` whose chat channels go to the local fake
platform, each compared with the fault-free run of its seed. The table has a row
per seed (the faults injected, then ``ok`` or ``FAIL`` per invariant) and is also
written to ``<out>/campaign.md``; a failing seed's row is followed by its broken
invariants and the command that reproduces it. Exit status 1 if any invariant
broke for any seed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from autopilot_cli.invariants import INVARIANTS
from autopilot_cli.local.faults import FaultSpec

# Column headings for the table (the invariant names are long).
SHORT = {
    "ledger_matches_fault_free": "ledger",
    "ledger_reconciles": "recon",
    "no_negative_balance": "bal≥0",
    "stock_never_negative": "stock",
    "coupon_codes_once": "coupon",
    "acknowledged_checkins_once": "acked",
    "occurrences_at_most_once": "occ≤1",
    "lost_answers_uncertain": "uncert",
    "reminders_at_most_once": "rem≤1",
    "lotteries_draw_once": "draws",
    "snapshots_match_fault_free": "snaps",
}


def parse_seeds(text: str) -> list[int]:
    """``1-12`` or ``3,7,9`` (or both: ``1-4,9``)."""
    seeds: list[int] = []
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            if sep:
                seeds += range(int(first), int(last) + 1)
            else:
                seeds.append(int(first))
        except ValueError:
            raise ValueError(f"invalid seeds {text!r}: expected 1-12 or 3,7,9") from None
    if not seeds:
        raise ValueError("no seeds")
    return seeds


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One seed in its own process; its summary (or the failure to run it)."""
    out = Path(args.out) / f"seed-{seed}"
    command = [
        sys.executable,
        "-m",
        "autopilot_cli.main",
        "simulate",
        "--config",
        args.config,
        "--start",
        args.start,
        "--days",
        str(args.days),
        "--members",
        str(args.members),
        "--seed",
        str(seed),
        "--faults",
        args.faults,
        "--local-platform",
        "--quiet",
        "--out",
        str(out),
    ]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    summary_path = out / "summary.json"
    if completed.returncode not in (0, 1) or not summary_path.exists():
        return {"seed": seed, "error": completed.stderr[-2000:], "elapsed_s": elapsed}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return {"seed": seed, "summary": summary, "elapsed_s": elapsed, "command": command}


def table(results: list[dict[str, Any]], spec: str) -> str:
    """The campaign as a Markdown table: seeds × invariants."""
    names = list(INVARIANTS)
    head = ["seed", "faults injected", *(SHORT[n] for n in names), "s"]
    lines = [
        f"Faults `{spec}`; each seed compared with its own fault-free run.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    notes: list[str] = []
    for result in results:
        seed = result["seed"]
        if "error" in result:
            lines.append(f"| {seed} | did not run | " + " | ".join("?" for _ in names) + " | |")
            notes.append(f"seed {seed} did not run: {result['error'].strip()[-500:]}")
            continue
        summary = result["summary"]
        held = {row["name"]: row for row in summary.get("invariants", [])}
        injected = sum(v for k, v in summary["faults"]["injected"].items() if k != "skew")
        cells = ["ok" if held[n]["held"] else "**FAIL**" for n in names]
        lines.append(
            f"| {seed} | {injected} | " + " | ".join(cells) + f" | {result['elapsed_s']:.0f} |"
        )
        for name in names:
            row = held[name]
            if not row["held"]:
                notes.append(f"seed {seed}: {name}: {'; '.join(row.get('examples', [])[:2])}")
                for suspect in row.get("suspects", [])[:2]:
                    notes.append(f"  near fault: {json.dumps(suspect, ensure_ascii=False)}")
        if not summary.get("invariants_held", False):
            notes.append("  reproduce: " + " ".join(result["command"][2:]))
    legend = ", ".join(f"{SHORT[n]} = {n}" for n in names)
    totals: dict[str, int] = {}
    for result in results:
        for kind, count in result.get("summary", {}).get("faults", {}).get("injected", {}).items():
            totals[kind] = totals.get(kind, 0) + count
    lines += ["", f"Columns: {legend}.", ""]
    lines.append(
        "Faults injected in all: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))
    )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autopilot_cli.campaign", description=__doc__)
    parser.add_argument("--seeds", default="1-12")
    parser.add_argument("--faults", default="standard")
    parser.add_argument("--config", default="config/faults.yaml")
    parser.add_argument("--start", default="2027-03-08T00:00Z")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default="out/faults")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
        spec = FaultSpec.parse(args.faults)
    except ValueError as exc:
        print(f"campaign: {exc}", file=sys.stderr)
        return 2
    args.faults = spec.text()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda seed: run_seed(seed, args), seeds))
    text = table(results, args.faults)
    (Path(args.out) / "campaign.md").write_text(text, encoding="utf-8")
    print(text)
    ok = all(r.get("summary", {}).get("invariants_held", False) for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
