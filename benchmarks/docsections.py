"""Sections of docs/benchmarks.md: each benchmark script rewrites only its own."""

from __future__ import annotations

from pathlib import Path


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, text) of each ``## `` section, in order (the preamble is left out)."""
    sections: list[tuple[str, str]] = []
    for block in text.split("\n## ")[1:]:
        heading = block.split("\n", 1)[0].strip()
        sections.append((heading, "## " + block.rstrip("\n") + "\n"))
    return sections


def keep_other_sections(generated: str, existing: str) -> str:
    """``generated``, followed by the sections of ``existing`` that this script does not write.

    Other benchmarks (the dispatcher at scale, the simulated month) keep their own
    sections in the same file; re-running this script must not drop them. A
    section is this script's when its heading starts like one it writes.
    """
    ours = [heading.split(":")[0] for heading, _ in _sections(generated)]
    kept = [
        body
        for heading, body in _sections(existing)
        if not any(heading.startswith(prefix) for prefix in ours)
    ]
    if not kept:
        return generated
    return generated.rstrip("\n") + "\n\n" + "\n".join(kept)


def replace_section(path: Path, heading: str, generated: str) -> None:
    """Write ``generated`` (one ``## <heading>: …`` section) into the Markdown file at
    ``path`` in place of the section whose heading starts with ``<heading>:``, or at
    its end; every other section stays where it is."""
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    blocks = existing.split("\n## ")
    body = generated.removeprefix("## ").rstrip("\n") + "\n"
    for i, block in enumerate(blocks[1:], start=1):
        if block.startswith(heading + ":"):
            blocks[i] = body
            break
    else:
        blocks.append(body)
    path.write_text("\n## ".join(blocks), encoding="utf-8")
