"""The judge stage: a local LLM reads each of the best-scored sentences beside the question and says whether it
states the answer; a question none of them answers is refused. Off by default (`llm.judge_sentences = 0`): it
refuses a few more unanswerable questions, at about 3.5 s an answer on 2 cores.

Why sentence by sentence, read from the logits: Qwen2.5-Coder-1.5B asked whether the whole evidence answers said
yes to 95% of answerable and 85% of crowd-written near-miss questions (issue 9). Asked about one sentence at a time
("Does the sentence state the answer to the question? Reply yes or no."), and read as the yes-against-no log-odds
of its first token, it separates: the best of six is above 0 for 77% of answerable, 24% of near-miss and none of
36 off-topic dev questions.

Measured on the eight dev splits (222 answerable, 75 near-miss, 36 off-topic questions), 30 November 2026:
- Refusing when none of the best three sentences reaches JUDGE_REFUSE (-1.75, chosen leave one document out in an
  earlier measurement over six sentences, the same on every fold): 1 more near-miss and 2 more off-topic questions
  refused (the General Python FAQ's off-topic 0.6 -> 1.0), no answerable one; with the extractive answers and with
  Qwen compose alike.
- Reordering the best sentences by score + w * log-odds (w = 0.15, chosen leave one document out earlier) put the
  key terms in the best sentence for 144 instead of 129 questions, but not in the answer: the selection already
  quotes a second and third sentence. Extractive key terms 175 -> 176 of 222 with citation precision 0.737 ->
  0.714 (mean of sets); Qwen compose key terms unchanged (constitution and history -1, kernel and design FAQ +1),
  citation precision down on four sets and up on three. Moving the scores as well as the order: 172 key terms.
  So the judge does not reorder.
- The prompt with the sentence last (the instruction read once per question) cost 27% less but found 2-3 fewer key
  terms when reordering; this one is kept.
- Time: 0.74 s a sentence (median; the question and instructions are read once); Qwen compose answers took 1.7-2.5 s
  median per set without the judge and 5.3-6.6 s with three sentences judged, beyond issue 10's 4 s target.
  Hence off. Reading the three sentences in one llama.cpp batch instead of one after another: 1.89 s against
  2.01 s (140 tokens, 2 threads): prompt reading on a CPU is bound by arithmetic, so batching does not change that.
  Judging only close calls (p < 0.45) would keep one of the three refusals: they were answered at p 0.88, 0.84
  and 0.32.

The system prompt and question are read once per question and kept in llama.cpp's cache; each sentence is read
after them (prompt length is the cost on a CPU). The judge shares the writer's loaded model and its lock, so a
process loads the model once and two callers never drive one llama.cpp context at the same time. A question the
best sentence covers word for word is never refused and not judged.

Only a model whose logits can be read in process (`llm.backend = "llamacpp"`) can judge; with other backends
`make_judge` returns None. The threshold was measured on Qwen2.5-Coder-1.5B; another GGUF's log-odds have their
own scale.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from rag.errors import BackendError
from rag.evidence import ScoredSentence
from rag.sentences import display

if TYPE_CHECKING:
    from rag.settings import Settings
    from rag.writers import LLMWriter

log = logging.getLogger(__name__)

JUDGE_SYSTEM = "You judge whether a sentence from a document states the answer to a question. Reply yes or no."
# The system prompt and the question are read once per question; each sentence and the instruction after it.
JUDGE_USER = ("Question: {question}\nSentence: {sentence}\n"
              "Does the sentence state the answer to the question? Reply yes or no.")
_SLOT = "\x00SENTENCE\x00"
_FIX = "Set llm.judge_sentences = 0 to answer without the judge."

# No judged sentence with log-odds at or above this: the question is refused (unless the best sentence holds every
# content word of the question, which is never refused). Leave one document out on the eight dev splits (six
# sentences judged): -1.75 on every fold; -1.5 refused 2 answerable dev questions.
JUDGE_REFUSE = -1.75
JUDGE_REFUSAL_NOTE = "The local model judged that none of the closest sentences states the answer."


class SentenceJudge(Protocol):
    """Scores sentences as answers to a question: log-odds that each states the answer (> 0: more yes than no)."""

    def judge(self, question: str, sentences: Sequence[str]) -> list[float]:
        ...


class LlamaCppJudge:
    """The writer's in-process llama.cpp model as a judge. The model is loaded on first use (by the writer)."""

    def __init__(self, writer: "LLMWriter") -> None:
        self.writer = writer
        self._answers: tuple[list[int], list[int]] | None = None

    def _model(self):
        client = getattr(self.writer.generator.model, "client", None)
        if client is None or not hasattr(client, "eval"):
            raise BackendError("llamacpp", "the judge needs an in-process llama.cpp model", _FIX)
        return client

    @staticmethod
    def _prompt_parts(llm, question: str) -> tuple[list[int], str]:
        """The prompt up to the sentence, tokenised, and the text after it, from the model's own chat template."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = (llm.metadata or {}).get("tokenizer.chat_template")
        if not template:
            raise BackendError("llamacpp", "the model file has no chat template, so it cannot judge", _FIX)
        eos = llm.detokenize([llm.token_eos()]).decode("utf-8", "ignore")
        bos = llm.detokenize([llm.token_bos()]).decode("utf-8", "ignore") if llm.token_bos() >= 0 else ""
        messages = [{"role": "system", "content": JUDGE_SYSTEM},
                    {"role": "user", "content": JUDGE_USER.format(question=" ".join(question.split()),
                                                                 sentence=_SLOT)}]
        formatted = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)(messages=messages)
        head, _, tail = formatted.prompt.partition(_SLOT)
        # As llama.cpp's own chat handler does: BOS only when the template did not write it already.
        return llm.tokenize(head.encode("utf-8"), add_bos=not formatted.added_special, special=True), tail

    def _answer_tokens(self, llm) -> tuple[list[int], list[int]]:
        """The first tokens of "yes" and "no", in the spellings a model starts its reply with."""
        if self._answers is None:
            def first(words: Sequence[str]) -> list[int]:
                return sorted({llm.tokenize(w.encode("utf-8"), add_bos=False, special=False)[0] for w in words})
            self._answers = first(("yes", "Yes", " yes", " Yes")), first(("no", "No", " no", " No"))
        return self._answers

    @staticmethod
    def _logits_after(llm, tokens: list[int]):
        """Evaluate `tokens`, reusing whatever prefix the context already holds, and return the last token's logits.
        Read from the context itself: `Llama.scores` is not filled unless the model was loaded with logits_all,
        which would keep a row of 151,936 floats per prompt token (ChatLlamaCpp does not ask for it)."""
        import llama_cpp
        import numpy as np

        held = llm.input_ids[:llm.n_tokens].tolist()
        common = 0
        for a, b in zip(held, tokens[:-1]):     # at least one token is evaluated, so the logits are fresh
            if a != b:
                break
            common += 1
        llm.n_tokens = common
        llm.eval(tokens[common:])
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()

    def judge(self, question: str, sentences: Sequence[str]) -> list[float]:
        generator = self.writer.generator
        try:
            with generator.lock:
                llm = self._model()
                head, tail = self._prompt_parts(llm, question)
                yes, no = self._answer_tokens(llm)
                out = []
                for sentence in sentences:
                    body = llm.tokenize((" ".join(sentence.split()) + tail).encode("utf-8"), add_bos=False,
                                        special=True)
                    logits = self._logits_after(llm, head + body)
                    out.append(_logsumexp(logits[yes]) - _logsumexp(logits[no]))
                return out
        except BackendError:
            raise
        except Exception as exc:
            problem = f"the judge failed ({type(exc).__name__}: {str(exc)[:200]})"
            raise BackendError("llamacpp", problem, _FIX) from None


def _logsumexp(values) -> float:
    top = float(max(values))
    return top + math.log(sum(math.exp(float(v) - top) for v in values))


def judge_best(judge: SentenceJudge, question: str, scored: Sequence[ScoredSentence], n: int) -> tuple[float, ...]:
    """The judge's log-odds for the `n` best-scored sentences, as a reader sees them (`display`)."""
    return tuple(judge.judge(question, [display(s.sentence.text) for s in scored[:n]]))


def make_judge(settings: "Settings", writer: object) -> SentenceJudge | None:
    """A judge when the settings ask for one and the writer holds an in-process llama.cpp model; otherwise None.
    Asked for with another LLM backend, it logs a warning whenever a pipeline is built (a server's or an API's
    logits cannot be read in process), rather than answering as if it judged; with the extractive writer there is
    no model, which needs no saying."""
    from rag.writers import LLMWriter

    backend, wanted = settings.llm.backend, settings.llm.judge_sentences
    if wanted and backend not in ("llamacpp", "extractive"):
        log.warning("llm.judge_sentences = %d has no effect with llm.backend = %r: only an in-process llama.cpp "
                    "model (llm.backend = \"llamacpp\") can judge. Answers are decided without the judge; set "
                    "llm.judge_sentences = 0 to silence this.", wanted, backend)
    if backend != "llamacpp" or wanted == 0 or not isinstance(writer, LLMWriter):
        return None
    return LlamaCppJudge(writer)
