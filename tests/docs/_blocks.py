"""Fenced blocks of the Markdown docs, and which of them the docs check runs.

The convention (also in docs/index.md):

- a ```` ```console ```` block's lines that start with ``$ `` are commands (a line ending in
  ``\\`` continues on the next); the other lines are expected output and are not compared;
- a ```` ```python ```` block is a script, run as it stands;
- a ```` ```toml ```` block is an export config (or part of one): `exporter.load_config` must accept it;
- ```` ```text ```` (and any other language) is shown, not run: for what CI lacks (Docker,
  kubectl, a real TF Serving, a GPU) or what is not a command at all;
- ``<!-- docs-check: skip (reason) -->`` on the line right above a fence skips that block,
  with the reason reported by pytest.

``bash``, ``sh`` and ``shell`` fences are refused, so that nothing that looks like a command
is silently left unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUN_LANGUAGES = ("console", "python", "toml")
#: Fences that look runnable but are not: choose `console` (run) or `text` (shown).
REFUSED_LANGUAGES = ("bash", "sh", "shell", "zsh")

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_SKIP = re.compile(r"^<!--\s*docs-check:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, and a skip reason if marked."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    def commands(self) -> list[str]:
        """The ``$ `` lines of a console block, continuation lines joined."""
        commands: list[str] = []
        pending: str | None = None
        for raw in self.text.splitlines():
            if pending is not None:
                pending += "\n" + raw
            elif raw.startswith("$ "):
                pending = raw[2:]
            else:
                continue  # expected output
            if pending.endswith("\\"):
                continue
            commands.append(pending)
            pending = None
        if pending is not None:
            commands.append(pending)
        return commands


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, language = match.groups()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1  # the closing fence
        skip = None
        if start > 0 and (marker := _SKIP.match(lines[start - 1].strip())):
            skip = marker.group("reason")
        found.append(Block(path, start + 1, language.lower(), "\n".join(body) + "\n", skip))
    return found
