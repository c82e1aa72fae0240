"""The retrieve stage: fused search, optional cross-encoder rerank, merge, budget.

Input: the standalone question. Output: `Retrieved` — the chunk-level hits (what retrieval metrics and the
decision features read) and the numbered passages given to the writer.

Neighbouring chunks overlap by design; merging them gives the generator one coherent span instead of the same
sentences twice, and the character budget keeps prompts (and the UI's sources panel) short.
"""

from __future__ import annotations

from dataclasses import dataclass

from index import SearchHit, SearchIndex
from rag.errors import RagError
from rag.settings import RetrievalSettings
from rag.types import Passage


@dataclass
class Retrieved:
    hits: list[SearchHit]      # chunk-level ranking (after reranking), best first
    passages: list[Passage]    # merged, budgeted context, numbered 1..n in rank order


class Reranker:
    """Optional sentence-transformers CrossEncoder; loaded from local files only."""

    def __init__(self, name: str) -> None:
        from index.embedding import resolve_model_path

        try:
            from sentence_transformers import CrossEncoder

            self.model = CrossEncoder(resolve_model_path(name), device="cpu", local_files_only=True)
        except Exception as exc:
            raise RagError(f"Cannot load reranker '{name}' offline ({type(exc).__name__}). Give a local "
                           "CrossEncoder folder path, or unset retrieval.reranker.") from None

    def rerank(self, query: str, hits: list[SearchHit]) -> list[SearchHit]:
        if not hits:
            return hits
        scores = self.model.predict([(query, h.chunk.text) for h in hits], show_progress_bar=False)
        order = sorted(range(len(hits)), key=lambda i: -float(scores[i]))
        return [hits[i] for i in order]


class PassageRetriever:
    def __init__(self, index: SearchIndex, settings: RetrievalSettings, reranker: Reranker | None = None) -> None:
        self.index = index
        self.settings = settings
        self.reranker = reranker
        self.searcher = index.searcher(settings)

    def ranked(self, query: str, k: int | None = None) -> list[SearchHit]:
        hits = self.searcher.search(query, max(k or 0, self.settings.candidates))
        if self.reranker is not None:
            hits = self.reranker.rerank(query, hits)
        return hits[:k] if k else hits

    def retrieve(self, query: str) -> Retrieved:
        hits = self.ranked(query)
        return Retrieved(hits, self.select(hits))

    def select(self, hits: list[SearchHit]) -> list[Passage]:
        """Take hits in rank order, merging overlapping or touching spans of one document, within k and budget."""
        s = self.settings
        spans: list[dict] = []  # each: source, title, section, start, end, score
        used = 0
        for hit in hits:
            c = hit.chunk
            merged = False
            if s.merge_adjacent:
                for span in spans:
                    if span["source"] == c.source and c.start <= span["end"] + 1 and c.end >= span["start"] - 1:
                        new_start, new_end = min(span["start"], c.start), max(span["end"], c.end)
                        growth = (new_end - new_start) - (span["end"] - span["start"])
                        if used + growth <= s.budget_chars:
                            used += growth
                            span["start"], span["end"] = new_start, new_end
                        merged = True
                        break
            if merged:
                continue
            if len(spans) >= s.k:
                continue
            length = c.end - c.start
            if used + length > s.budget_chars:
                continue
            used += length
            spans.append({"source": c.source, "title": c.title, "section": c.section, "start": c.start,
                          "end": c.end, "score": hit.score})
        passages = []
        for n, span in enumerate(spans, start=1):
            text = self.index.document_text(span["source"])[span["start"]:span["end"]]
            passages.append(Passage(n=n, source=span["source"], title=span["title"], section=span["section"],
                                    start=span["start"], end=span["end"], text=text, score=float(span["score"])))
        return passages
