"""Citation markers: the one definition of the `[n]` syntax, used by rag, ui and eval alike.

A marker is a bracket of passage numbers: `[1]`, `[1, 2]`, `[1; 2]`, `[1-3]` / `[1–3]` (a range). Adjacent
markers (`[1][2]`) are two markers. Before this module the syntax was written five times and the copies
disagreed (validation ignored `[1-3]` that eval counted; streaming did not link `[1; 2]`).

Document text can contain marker-like text ("the siren sounded [2] during storms"). When such text is quoted
into an answer it is escaped with `escape_literal` (`\\[2]`), which no function here reads as a citation; `plain`
and `display_text` turn it back into the literal "[2]" for people. So the chat, `rag ask --json` and the
evaluation all agree on which numbers an answer cites.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# A range wider than this is not a range but two numbers ("[1-1999]" in a quote is not 1999 citations).
MAX_RANGE = 50
_BODY = r"\d+(?:\s*(?:,|;|-|–)\s*\d+)*"
# Unescaped markers only: a backslash before the bracket marks literal document text.
MARKER = re.compile(rf"(?<!\\)\[\s*({_BODY})\s*\]")
_LITERAL = re.compile(rf"(?<!\\)\[(?=\s*{_BODY}\s*\])")
_ESCAPED = re.compile(rf"\\\[(?=\s*{_BODY}\s*\])")


@dataclass(frozen=True)
class Marker:
    """One marker in a text: where it is and the passage numbers it names, in order, without repeats."""

    start: int
    end: int
    numbers: tuple[int, ...]


def _numbers(body: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in re.split(r"\s*[,;]\s*", body.strip()):
        bounds = [b for b in re.split(r"\s*[-–]\s*", part) if b]
        if len(bounds) == 2 and 0 <= int(bounds[1]) - int(bounds[0]) <= MAX_RANGE:
            out.extend(range(int(bounds[0]), int(bounds[1]) + 1))
        else:
            out.extend(int(b) for b in bounds)
    return tuple(dict.fromkeys(out))


def find(text: str) -> list[Marker]:
    """Every citation marker of `text`, in order."""
    return [Marker(m.start(), m.end(), _numbers(m.group(1))) for m in MARKER.finditer(text or "")]


def numbers(text: str) -> list[int]:
    """Every passage number cited, once per marker occurrence, in order: "[1, 2] … [1-3]" gives 1, 2, 1, 2, 3."""
    return [n for m in find(text) for n in m.numbers]


def cited(text: str) -> list[int]:
    """The distinct passage numbers cited, in order of first appearance."""
    return list(dict.fromkeys(numbers(text)))


def replace(text: str, fn: Callable[[Marker], str]) -> str:
    """`text` with each marker replaced by `fn(marker)`."""
    out, pos = [], 0
    for m in find(text):
        out.append(text[pos:m.start])
        out.append(fn(m))
        pos = m.end
    out.append(text[pos:])
    return "".join(out)


def format_marker(numbers: Iterable[int]) -> str:
    """The canonical form: one `[n]` per number, adjacent ("[1][3]"); empty for no numbers."""
    return "".join(f"[{n}]" for n in dict.fromkeys(numbers))


def renumber(text: str, mapping: Mapping[int, int]) -> str:
    """Markers rewritten through `mapping`; numbers missing from it are dropped (a marker left with no number
    disappears), and the rest are written in canonical form."""
    return tidy(replace(text, lambda m: format_marker(mapping[n] for n in m.numbers if n in mapping)))


def strip(text: str) -> str:
    """The text without markers (and the space before each), literal document brackets kept as escaped."""
    return tidy(replace(text, lambda m: ""))


def tidy(text: str) -> str:
    """Spaces left before punctuation or doubled by removing markers are closed up."""
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def escape_literal(text: str) -> str:
    """Document text about to be quoted in an answer: its marker-like brackets become literal (`\\[2]`)."""
    return _LITERAL.sub(r"\\[", text or "")


def unescape(text: str) -> str:
    """Literal brackets back to how the document wrote them (for display, after markers were handled)."""
    return _ESCAPED.sub("[", text or "")


def plain(text: str) -> str:
    """What a person reads without the citations: markers removed, literal document brackets restored."""
    return unescape(strip(text))


def move_inside(text: str) -> str:
    """Markers that follow a sentence's full stop move in front of it ("Iran. [1]" -> "Iran [1]."), so a
    sentence splitter keeps each marker with the sentence it belongs to."""
    return re.sub(rf"([.!?])(\s*)((?:(?<!\\)\[\s*{_BODY}\s*\])+)", r" \3\1", text)


_RUN_END = re.compile(r"[ \t]*[.!?;:,]?")


def cited_segments(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """`text` cut after each run of markers: (the words since the previous run, the numbers this run cites).
    Trailing words no marker follows come last with no numbers. Punctuation right after a run ("U.S. [1].")
    stays with its segment.

    Why not sentences: a writer that ends every sentence with its marker has already said where each claim ends,
    and a sentence splitter does not know "U.S." is not a full stop; cutting a composed "...between Iran, Israel,
    and the U.S. [1]" there produced "U. S." and lost the key term (essay dev fact-03)."""
    out: list[tuple[str, tuple[int, ...]]] = []
    pos = 0
    found = find(text)
    i = 0
    while i < len(found):
        start = found[i].start
        nums: list[int] = list(found[i].numbers)
        end = found[i].end
        while i + 1 < len(found) and not text[end:found[i + 1].start].strip(" \t,;"):
            i += 1
            nums.extend(found[i].numbers)
            end = found[i].end
        tail = _RUN_END.match(text, end)
        stop = tail.end() if tail else end
        body = tidy(text[pos:start] + text[end:stop].strip())
        if re.search(r"[^\W_]", body):
            out.append((body, tuple(dict.fromkeys(nums))))
        pos = stop
        i += 1
    rest = text[pos:].strip()
    if re.search(r"[^\W_]", rest):
        out.append((tidy(rest), ()))
    return out
