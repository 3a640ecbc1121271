"""`autopilot lottery verify`: the published files in, VERIFIED or what differs out."""

from __future__ import annotations

import json
from pathlib import Path

from autopilot.lottery.draw import PrizeTier, commit, draw, entrants_hash, serialize_entrants

from autopilot_cli.main import main

SEED = bytes(range(32))


def _published(tmp_path: Path, count: int = 30) -> tuple[Path, Path]:
    entrants = [(f"m{i:04d}", 1 + i % 4) for i in range(count)]
    digest = entrants_hash(entrants)
    record = draw(
        entrants,
        seed=SEED,
        entrants_hash=digest.entrants_hash,
        prizes=[PrizeTier("first", 1), PrizeTier("second", 3)],
        external_value="drand round 123",
        commitment=commit(SEED),
    )
    record_path = tmp_path / "draw.json"
    record_path.write_text(record.to_json(), encoding="utf-8")
    entrants_path = tmp_path / "entrants.tsv"
    entrants_path.write_bytes(b"".join(serialize_entrants(entrants)))
    return record_path, entrants_path


def test_a_published_draw_verifies(tmp_path, capsys):
    record, entrants = _published(tmp_path)
    assert main(["lottery", "verify", str(record), "--entrants", str(entrants)]) == 0
    assert capsys.readouterr().out.startswith("VERIFIED")


def test_without_the_entrant_list_it_says_what_it_did_not_check(tmp_path, capsys):
    record, _ = _published(tmp_path)
    assert main(["lottery", "verify", str(record)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VERIFIED")
    assert "note:" in out


def test_a_swapped_winner_is_reported_with_exit_1(tmp_path, capsys):
    record, entrants = _published(tmp_path)
    data = json.loads(record.read_text(encoding="utf-8"))
    first, second = data["winners"][0], data["winners"][1]
    first["member_id"], second["member_id"] = second["member_id"], first["member_id"]
    record.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert main(["lottery", "verify", str(record), "--entrants", str(entrants)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("NOT VERIFIED")
    assert "winner #1" in out


def test_an_entrant_added_after_close_is_reported(tmp_path, capsys):
    record, entrants = _published(tmp_path)
    entrants.write_bytes(entrants.read_bytes() + b"zz-late\t1\n")
    assert main(["lottery", "verify", str(record), "--entrants", str(entrants)]) == 1
    assert "entrant" in capsys.readouterr().out


def test_hostile_and_missing_files_get_a_clear_answer(tmp_path, capsys):
    record, entrants = _published(tmp_path)
    assert main(["lottery", "verify", str(tmp_path / "nope.json")]) == 2
    assert "cannot read the record" in capsys.readouterr().err
    assert main(["lottery", "verify", str(record), "--entrants", str(tmp_path / "nope")]) == 2
    assert "cannot read the entrant list" in capsys.readouterr().err
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000, encoding="utf-8")
    assert main(["lottery", "verify", str(deep)]) == 1
    assert "nested too deeply" in capsys.readouterr().out
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\xff\xfe not json")
    assert main(["lottery", "verify", str(garbage)]) == 1
    assert "not valid UTF-8 JSON" in capsys.readouterr().out
    entrants.write_bytes(b"m0001\t0\n")
    assert main(["lottery", "verify", str(record), "--entrants", str(entrants)]) == 1
    assert "entrant file line 1" in capsys.readouterr().out
