"""The one span type: a stretch of one source document, located by exact character offsets.

Chunks (index), passages given to a writer and citations (rag) are all spans, so every layer reads
`source, title, section, start, end, text` the same way, and `text == document_text[start:end]` is the one
invariant that makes a citation checkable.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# Joins a section's headings from the outermost in (`Span.section`, built by `index.chunking.sections`): what the
# UI shows, what a passage is embedded with, and what the evidence stage reads as each sentence's context.
SECTION_SEPARATOR = " › "


def own_heading(section: str) -> str:
    """The innermost heading of a section path ("6. Technical committee › 6.3. Procedure" -> "6.3. Procedure")."""
    return section.rsplit(SECTION_SEPARATOR, 1)[-1]


@dataclass(frozen=True, kw_only=True)
class Span:
    source: str
    title: str
    section: str
    start: int
    end: int
    text: str

    @property
    def heading(self) -> str:
        """The section's own heading, the line that opens it in the text ('' before the first heading)."""
        return own_heading(self.section)

    def span_dict(self) -> dict:
        """The span's own fields as plain data (subclasses add theirs in `to_dict`)."""
        return {f.name: getattr(self, f.name) for f in fields(Span)}

    def located_in(self, document_text: str) -> bool:
        """Whether the span's text is exactly the document's characters at its offsets."""
        return 0 <= self.start <= self.end <= len(document_text) and document_text[self.start:self.end] == self.text
