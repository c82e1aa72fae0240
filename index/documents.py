"""Reading user files into plain text whose character offsets every later stage refers to.

Each loader returns the exact text that chunks are cut from; that text is stored in the index so a citation's
`start:end` span stays checkable even after the file on disk changes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_SUFFIXES: dict[str, str] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}


# Bumped when a loader reads files differently (the text it returns changes): an index records the versions it
# was built with (`IndexConfig.chunker_signature`), and a rebuild reads each unchanged file of a kind whose loader
# changed again instead of re-chunking the stored text (`reread`). Without it an improved loader never reached a
# kept index: a tutorial page kept the old HTML loader's navigation text (eval recall 0.775 against 0.875 fresh).
LOADER_VERSIONS: dict[str, int] = {"text": 1, "markdown": 1, "html": 1, "pdf": 1}


class DocumentError(Exception):
    """A file that cannot be indexed; the message names the file and says what to do."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Document:
    source: str
    title: str
    text: str
    kind: str
    size: int
    sha256: str


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of_file(path: str | Path) -> str:
    return file_sha256(Path(path).read_bytes())


def discover_files(paths: list[Path]) -> tuple[list[Path], list[DocumentError]]:
    """Expand folders to the supported files beneath them; report paths that are missing or unsupported."""
    found: list[Path] = []
    errors: list[DocumentError] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            errors.append(DocumentError(path, "no such file or folder"))
        elif path.is_dir():
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if child.is_file() and child.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.append(child.resolve())
        elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
            kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
            errors.append(DocumentError(path, f"unsupported file type '{path.suffix or '(none)'}'; supported: {kinds}"))
        else:
            found.append(path.resolve())
    unique = list(dict.fromkeys(found))
    return unique, errors


def _decode(path: Path, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise DocumentError(path, "looks like a binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            path,
            f"is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); re-save it as UTF-8",
        ) from None


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _pretty_stem(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip().capitalize() or path.name


def _load_text(path: Path, data: bytes) -> tuple[str, str | None]:
    return _normalise(_decode(path, data)), None


def _load_markdown(path: Path, data: bytes) -> tuple[str, str | None]:
    text = _normalise(_decode(path, data))
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
    return text, match.group(1).strip() if match else None


# Elements that start a new line of text; everything else (code, links, emphasis) flows inside its sentence.
_HTML_BLOCKS = ["address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt", "figcaption",
                "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
                "pre", "section", "table", "td", "th", "tr", "ul"]


_PERMALINK_MARKS = {"¶", "#", "§", "🔗"}
_PRE_MARK = "\x00"


def _load_html(path: Path, data: bytes) -> tuple[str, str | None]:
    """Visible text with one line per block element. Inline elements stay inside their sentence: joining every
    text node with a newline (the first loader) cut "the `pass` statement does nothing" into three lines, so
    sentence splitting quoted fragments; on the Python tutorial chapter that kept key-term accuracy at 0.04 (dev).
    Whitespace from the HTML source is collapsed, except inside <pre>, whose lines are kept.

    The text is written the way the Markdown loader reads, because HTML says what is a heading and plain text
    can only guess: <h1>…<h6> become "# …" lines and <pre> lines are indented four spaces (CommonMark's code
    block, so "# Create a sample collection" in code is not a heading). Guessing from short lines made
    "True", "L = []" and "None" section headings of the Python tutorial and missed every real one
    ("4.1. if Statements" opens with a digit). Navigation and permalink marks ("¶") are dropped, and a page
    that marks its main content (<main>, role="main") is read from there: a question is about the content, and
    the sidebar's "Previous topic" was retrievable text."""
    from bs4 import BeautifulSoup, NavigableString
    from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

    soup = BeautifulSoup(_decode(path, data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    for node in soup.find_all(string=lambda t: isinstance(t, (Comment, Declaration, Doctype, ProcessingInstruction))):
        node.extract()  # '<!DOCTYPE html PUBLIC …>' and '<!-- Created by GNU Texinfo -->' are not text
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    if soup.title:
        soup.title.decompose()
    if not title and soup.h1:
        title = soup.h1.get_text(" ", strip=True)
    main = soup.find("main") or soup.find(attrs={"role": "main"})
    root = main if main is not None and main.get_text(strip=True) else soup
    for tag in root.find_all(["nav"]) + root.find_all(attrs={"role": ["navigation", "search"]}):
        tag.decompose()
    for link in root.find_all("a"):
        if link.get_text(strip=True) in _PERMALINK_MARKS:
            link.decompose()
    for node in root.find_all(string=True):
        if not isinstance(node, NavigableString):
            continue
        if node.find_parent("pre"):
            node.replace_with(str(node).replace("\n", "\n" + _PRE_MARK))
        else:
            node.replace_with(re.sub(r"\s+", " ", str(node)))
    for pre in root.find_all("pre"):
        pre.insert(0, _PRE_MARK)
    for level in range(1, 7):
        for heading in root.find_all(f"h{level}"):
            heading.insert(0, "#" * level + " ")
    for tag in root.find_all(_HTML_BLOCKS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    raw = root.get_text("")
    lines = []
    for line in _normalise(raw).split("\n"):
        if line.startswith(_PRE_MARK):  # code keeps its own indentation
            code = line.replace(_PRE_MARK, "").expandtabs(4).rstrip()
            lines.append("    " + code if code.strip() else "")
        else:
            lines.append(re.sub(r"[ \t\u00a0]+", " ", line).strip())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return text, title or None


_PAGE_NUMBER = re.compile(r"\b(\d+|[ivxlcdm]+)\b", re.I)
# A line at the top or bottom of at least this share of the pages (and of three pages at least) is a running
# header or footer.
RUNNING_SHARE = 0.5


def _drop_running_lines(pages: list[str]) -> list[str]:
    """Pages without their running headers and footers: a line that opens (or closes) most pages once its page
    number is set aside ("A Brief History of Debian 5 / 21"). Left in, it lands inside the sentence that runs over
    the page break ("…led it until March A Brief History of Debian 5 / 21 1996.") and in the passage's words."""
    def key(line: str) -> str:
        return _PAGE_NUMBER.sub("#", " ".join(line.split()))

    filled = [lines for lines in (page.split("\n") for page in pages) if any(line.strip() for line in lines)]
    if len(filled) < 3:
        return pages
    out = list(pages)
    for end in (0, -1):
        counts: dict[str, int] = {}
        for lines in filled:
            edge = key([line for line in lines if line.strip()][end])
            counts[edge] = counts.get(edge, 0) + 1
        running = {k for k, n in counts.items() if n >= max(3, RUNNING_SHARE * len(filled))}
        if not running:
            continue
        for i, page in enumerate(out):
            lines = page.split("\n")
            idx = [j for j, line in enumerate(lines) if line.strip()]
            if idx and key(lines[idx[end]]) in running:
                del lines[idx[end]]
                out[i] = "\n".join(lines).strip()
    return out


def _load_pdf(path: Path, data: bytes) -> tuple[str, str | None]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise DocumentError(path, "is an encrypted PDF; remove the password first") from None
        pages = _drop_running_lines([_normalise(page.extract_text() or "").strip() for page in reader.pages])
        meta_title = (reader.metadata.title if reader.metadata else None) or None
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise DocumentError(path, f"is not a readable PDF ({exc})") from None
    # Pages are separated by a form feed on its own line (pdftotext's convention), empty pages kept, so a viewer can
    # number pages by counting "\f"; chunking and sentence splitting read the line as blank (tests/test_ui_viewer).
    text = "\n\f\n".join(pages)
    if not text.strip():
        raise DocumentError(path, "PDF has no extractable text (a scanned image?); run OCR on it first")
    return text, meta_title


_LOADERS = {"text": _load_text, "markdown": _load_markdown, "html": _load_html, "pdf": _load_pdf}


def load_document(path: Path, title: str | None = None, max_bytes: int | None = None) -> Document:
    """Read one file; raises DocumentError with a specific, user-facing reason."""
    path = Path(path)
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(path, f"unsupported file type '{path.suffix or '(none)'}'")
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise DocumentError(path, f"is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
        data = path.read_bytes()
    except FileNotFoundError:
        raise DocumentError(path, "no such file") from None
    except IsADirectoryError:
        raise DocumentError(path, "is a folder, not a file") from None
    except PermissionError:
        raise DocumentError(path, "cannot be read (permission denied)") from None
    if not data.strip():
        raise DocumentError(path, "is empty; there is no text to index")
    text, found_title = _LOADERS[kind](path, data)
    if not text.strip():
        raise DocumentError(path, "has no text to index")
    return Document(
        source=str(path.resolve()),
        title=title or found_title or _pretty_stem(path),
        text=text,
        kind=kind,
        size=len(data),
        sha256=file_sha256(data),
    )


def reread(doc: Document, built_with: dict | None, max_bytes: int | None = None) -> Document | None:
    """`doc` (a stored text) read again from its file, when the loader of its kind has changed since the index
    was built (`built_with`: the loader versions in the index's chunker signature; None or missing in an index
    that predates them) and the file is still the one that was indexed (same SHA-256). None when the stored text
    stands: the loader is the same, or the file has gone or changed (an update will index the new file)."""
    built = (built_with or {}).get(doc.kind)
    if built == LOADER_VERSIONS.get(doc.kind):
        return None
    path = Path(doc.source)
    try:
        if not path.is_file() or sha256_of_file(path) != doc.sha256:
            return None
        return load_document(path, title=doc.title, max_bytes=max_bytes)
    except (OSError, DocumentError):
        return None
