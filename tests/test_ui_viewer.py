"""The document viewer, chip and palette logic without a server: what the viewer marks at which offsets, PDF page
numbers (the loader's form feeds, which chunking and sentence splitting must read as blank lines), colour
contrast, and the viewer's render time on a 1 MB document (printed, not asserted: timing belongs to
`python -m ui.bench_viewer`)."""

from __future__ import annotations

import html
import re
import time

import pytest

from rag import Answer, Citation


def _answer(text: str, citations: list[Citation], answer: str) -> Answer:
    return Answer(question="q?", answer=answer, refused=False, backend="extractive", citations=citations)


def _cite(doc: str, n: int, start: int, end: int, highlights, source: str = "/docs/a.txt") -> Citation:
    return Citation(n=n, source=source, title="Doc A", section="Wildlife", start=start, end=end,
                    text=doc[start:end], highlights=[tuple(h) for h in highlights])


def _strip_tags(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered))


# -- chips: each marker gets its own claim's sentences ---------------------------------------------------------------
def test_each_marker_of_one_number_gets_its_own_claims_sentence():
    from ui import citations

    doc = "Intro line.\n## Wildlife\nFoxes hunt at night. Owls nest in barns. Bees sleep in winter.\n"
    fox, owl = doc.index("Foxes"), doc.index("Owls")
    fox_end, owl_end = doc.index("night.") + 6, doc.index("barns.") + 6
    c1 = _cite(doc, 1, doc.index("## Wildlife"), len(doc), [(owl, owl_end), (fox, fox_end)])
    answer = _answer(doc, [c1], "Foxes hunt at night [1]. Owls nest in barns [1].")
    chips = citations.chips(answer)
    assert [(ch.k, ch.n) for ch in chips] == [(0, 1), (1, 1)]
    assert chips[0].spans == ((fox, fox_end),) and chips[0].quote == "Foxes hunt at night."
    assert chips[1].spans == ((owl, owl_end),) and chips[1].quote == "Owls nest in barns."
    assert citations.parse_request("c:0:1|7") == ("c", 0, 1, 7)
    assert citations.parse_request("p:2:3") == ("p", 2, 3, 0)
    assert citations.parse_request("c:0:<script>") is None and citations.parse_request("") is None


def test_chip_carries_label_and_quote_through_the_sanitizer_allowed_title():
    from ui import render

    doc = "Foxes hunt at night. Owls nest in barns."
    c1 = _cite(doc, 1, 0, len(doc), [(0, 20)])
    message = render.answer_message(_answer(doc, [c1], "Foxes hunt at night [1]."), turn=2)
    assert 'id="cite-2-0"' in message and 'href="#src-2-1"' in message and ">[1]</a>" in message
    title = html.unescape(re.search(r'title="([^"]*)"', message)[1])
    label, where, quote = title.split(render.CHIP_FIELDS)
    assert label == "Citation 1: Doc A, Wildlife" and where == "Doc A — § Wildlife"
    assert quote == "Foxes hunt at night."
    assert '<span class="claim" id="claim-2-0">Foxes hunt at night</span>' in message


def test_cards_do_not_repeat_the_section_heading():
    from ui import render

    doc = "## Wildlife\nFoxes hunt at night.\n"
    c1 = _cite(doc, 1, 0, len(doc), [(doc.index("Foxes"), doc.index("night.") + 6)])
    panel = render.sources_panel(_answer(doc, [c1], "Foxes hunt at night [1]."), turn=0)
    assert "## Wildlife" not in panel and "§ Wildlife" in panel
    assert ">Foxes hunt at night.</mark>" in panel
    assert 'data-cite="c:0:0"' in panel  # "Show in document" opens the viewer at the first marker


# -- palette --------------------------------------------------------------------------------------------------------
def _luminance(rgb: str) -> float:
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (float(x) for x in rgb.split(","))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def test_palette_colours_have_3_to_1_contrast_on_white():
    from ui import render

    for rgb in render.PALETTE:
        ratio = (1.05) / (_luminance(rgb) + 0.05)
        assert ratio >= 3.0, (rgb, ratio)


# -- viewer rendering -----------------------------------------------------------------------------------------------
def test_viewer_marks_the_span_its_sentence_and_the_other_citations():
    from ui import citations, viewer

    doc = ("Far away at the start. " * 40 + "\n## Wildlife\nFoxes hunt at night. Owls nest in barns. <b>x</b>\n"
           + "Bees sleep in winter. " * 40)
    fox, fox_end = doc.index("Foxes"), doc.index("night.") + 6
    bees = doc.index("Bees")
    c1 = _cite(doc, 1, doc.index("## Wildlife"), doc.index("Bees"), [(fox, fox_end)])
    c2 = _cite(doc, 2, bees, bees + 22, [(bees, bees + 21)])
    answer = _answer(doc, [c1, c2], "Foxes hunt at night [1]. Bees sleep in winter [2].")
    chips = citations.chips(answer)
    out = viewer.viewer_html(open_id=5, answer=answer, turn=0, text=doc, kind="text", current=c1,
                             spans=chips[0].spans, position=(1, 2), neighbours=(None, chips[1]))
    assert _strip_tags(out).count("Far away at the start.") == 40  # the whole document, not the chunk
    assert 'data-open-id="5"' in out
    focus = re.search(r'<span class="focus"[^>]*id="viewer-current"[^>]*>([^<]*)</span>', out)
    assert focus and focus[1] == "Foxes hunt at night."
    assert "&lt;b&gt;x&lt;/b&gt;" in out and "<b>x</b>" not in out  # document text is escaped
    assert re.search(r'class="cnum"[^>]*>\[2\]</span><span class="cited"', out)  # other citation marked
    assert 'data-cite="c:0:1"' in out and 'data-return="cite-0-1"' in out  # Next goes to chip 1
    assert "Citation [1] · 1 of 2" in out


def test_pdf_pages_are_numbered_from_form_feeds():
    from ui import viewer

    doc = "Page one text.\n\f\nPage two text.\n\f\n\n\f\nPage four: the cited line.\n"
    start = doc.index("the cited")
    c1 = _cite(doc, 1, start, start + 15, [(start, start + 15)], source="/docs/r.pdf")
    out = viewer.viewer_html(open_id=1, answer=_answer(doc, [c1], "x [1]."), turn=0, text=doc, kind="pdf",
                             current=c1, spans=[(start, start + 15)])
    assert [int(p) for p in re.findall(r'data-page="(\d+)"', out)] == [1, 2, 3, 4]
    assert "page 4" in out and "\f" not in out


def test_pdf_loader_separates_pages_with_form_feeds_that_chunks_and_sentences_ignore(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    from index.chunking import Chunker
    from index.documents import load_document
    from rag.sentences import split_sentences

    path = tmp_path / "three.pdf"
    with PdfPages(path) as pdf:
        for words in (["Harbour Report", "Copper exports rose by 14 percent."], [],
                      ["Ferries leave at dawn.", "The quay was rebuilt in 1990."]):
            fig = plt.figure(figsize=(8.5, 11))
            for i, line in enumerate(words):
                fig.text(0.08, 0.92 - 0.04 * i, line, fontsize=9)
            pdf.savefig(fig)
            plt.close(fig)
    doc = load_document(path)
    assert doc.text.count("\f") == 2  # three pages, the empty second one kept so numbering stays right
    from ui.viewer import page_of

    assert page_of(doc.text, doc.text.index("Ferries")) == 3
    for chunk in Chunker(200, 0, "sections").split(doc):
        assert chunk.text == chunk.text.strip() and not chunk.text.startswith("\f") and \
            not chunk.text.endswith("\f")
        assert chunk.section != "\f"
    sentences = split_sentences(doc.text)
    assert sentences and all("\f" not in s.text for s in sentences)
    assert any(s.text == "Ferries leave at dawn." for s in sentences)


def test_viewer_renders_a_1_mb_document_quickly(capsys):
    from ui import citations, viewer

    paragraph = "The harbour of Quellport freezes every February, and ferries wait at the quay. " * 10 + "\n\n"
    doc = paragraph * (1_000_000 // len(paragraph))
    middle = len(doc) // 2
    start = doc.index("The harbour", middle)
    end = doc.index("February,", start) + 9
    c1 = _cite(doc, 1, start, start + 400, [(start, end)])
    answer = _answer(doc, [c1], "The harbour freezes every February [1].")
    chips = citations.chips(answer)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        out = viewer.viewer_html(open_id=1, answer=answer, turn=0, text=doc, kind="text", current=c1,
                                 spans=chips[0].spans)
        best = min(best, time.perf_counter() - t0)
    assert len(doc) >= 990_000 and "viewer-current" in out
    with capsys.disabled():
        print(f"\nviewer: rendered a {len(doc) / 1e6:.2f} MB document in {best * 1000:.1f} ms "
              f"({len(out) / 1e6:.2f} MB of HTML)")
