"""Serving safely and at bounded cost (issue 11, F3 F4 F5 F7): `rag chat` refuses to serve beyond this machine
without a login, failed logins are throttled per client, `/ask` checks its arguments and bounds what a call costs
and returns, a chat session keeps no oversized text, and a bounded soak of concurrent API clients is all answered
with the server's memory flat. Real servers on 127.0.0.1 and free ports, real model and index.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pytest
from ui_support import make_settings, serve

pytestmark = pytest.mark.timeout(600)

Q_DEFENSE = "Why did Russia avoid a mutual defense clause with Iran?"
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def sec_settings(tmp_path_factory):
    return make_settings(tmp_path_factory.mktemp("ui-security"))


@pytest.fixture(scope="module")
def sec_rag(sec_settings, embedder):
    from rag import RAG

    return RAG.from_settings(sec_settings, embedder=embedder)


@pytest.fixture(scope="module")
def app_url(sec_settings, sec_rag):
    from ui.app import build_app

    with serve(build_app(sec_settings, sec_rag), sec_settings) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


# -- exposure: no public server without a login (F3) ----------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST.", "::1", "[::1]",
                                  "::ffff:127.0.0.1"])
def test_loopback_hosts_need_no_login(host):
    from ui.app import exposure, is_loopback

    assert is_loopback(host)
    assert exposure(host, share=False, has_auth=False) == exposure(host, False, False, insecure_no_auth=True)
    assert not exposure(host, share=False, has_auth=False).public


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.org", "my-laptop", ""])
def test_other_hosts_and_share_links_need_a_login_or_an_explicit_flag(host):
    from ui.app import exposure, is_loopback

    assert not is_loopback(host)
    refused = exposure(host, share=False, has_auth=False)
    assert refused.public and refused.refusal and "ui.auth" in refused.refusal
    assert "--insecure-no-auth" in refused.refusal
    with_login = exposure(host, share=False, has_auth=True)
    assert with_login.refusal is None and any("plain HTTP" in w for w in with_login.warnings)
    assert exposure(host, share=False, has_auth=True, tls=True).warnings == ()
    insecure = exposure(host, share=False, has_auth=False, insecure_no_auth=True)
    assert insecure.refusal is None and any("WITHOUT A LOGIN" in w for w in insecure.warnings)


def test_a_share_link_needs_a_login_even_on_loopback():
    from ui.app import exposure

    shared = exposure("127.0.0.1", share=True, has_auth=False)
    assert shared.public and "share link" in shared.refusal
    assert exposure("127.0.0.1", share=True, has_auth=True).refusal is None
    assert exposure("127.0.0.1", share=True, has_auth=True).warnings == ()  # the share link is HTTPS
    loud = exposure("127.0.0.1", share=True, has_auth=False, insecure_no_auth=True)
    assert loud.refusal is None and "SHARE LINK" in loud.warnings[0]


def _rag_chat(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    rag = Path(sys.executable).with_name("rag")
    environment = {**os.environ, "RAG_INDEX__DIR": str(tmp_path / "index"), "GRADIO_ANALYTICS_ENABLED": "False",
                   "HF_HUB_OFFLINE": "1", **env}
    environment.pop("RAG_UI__AUTH", None)
    environment.update(env)
    return subprocess.run([str(rag), "chat", *args], env=environment, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


@pytest.mark.parametrize("args, env", [
    (["--host", "0.0.0.0", "--port", "1"], {}),
    (["--share", "--port", "1"], {}),
    (["--port", "1"], {"RAG_UI__HOST": "0.0.0.0"}),  # from the settings, not the command line
])
def test_rag_chat_refuses_a_public_server_without_a_login(tmp_path, args, env):
    started = time.perf_counter()
    out = _rag_chat(tmp_path, *args, **env)
    assert out.returncode == 2, (out.stdout, out.stderr)
    message = " ".join(out.stderr.split())
    assert "Refusing to serve" in message and "ui.auth" in message and "--insecure-no-auth" in message, message
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "index").exists()  # refused before loading the model or building an index
    assert time.perf_counter() - started < 60


def test_rag_chat_refuses_malformed_auth_without_printing_it(tmp_path):
    out = _rag_chat(tmp_path, "--port", "1", RAG_UI__AUTH='["alice:' + PASSWORD + '", "bob-secret-pass"]')
    assert out.returncode == 2
    message = " ".join(out.stderr.split())
    assert "ui.auth entry 2 of 2 must look like 'user:password'" in message
    assert "bob-secret-pass" not in out.stderr and PASSWORD not in out.stderr
    assert not (tmp_path / "index").exists()


def test_launch_refuses_before_building_anything(sec_settings):
    from rag import RagError
    from ui.app import launch

    class NoRag:  # launch must refuse before it touches the RAG or Gradio
        def __getattr__(self, name):
            raise AssertionError(f"launch used the RAG ({name}) before refusing")

    with pytest.raises(RagError, match="Refusing to serve on '0.0.0.0'"):
        launch(sec_settings, NoRag(), host="0.0.0.0", port=1)
    with pytest.raises(RagError, match="share link"):
        launch(sec_settings.updated(ui={"share": True}), NoRag(), port=1)


def test_auth_entries_are_checked_and_short_passwords_warned():
    from rag import RagError
    from ui.app import MIN_PASSWORD_CHARS, parse_auth

    assert MIN_PASSWORD_CHARS == 12
    pairs, warnings = parse_auth([f"alice:{PASSWORD}", "bob:pw:with:colons-long"])
    assert pairs == [("alice", PASSWORD), ("bob", "pw:with:colons-long")] and warnings == []
    pairs, warnings = parse_auth(["u:p", "v:s3cr3t"])
    assert pairs == [("u", "p"), ("v", "s3cr3t")]  # accepted, but warned about
    assert len(warnings) == 2 and "'u'" in warnings[0] and "1 character long" in warnings[0]
    assert all("at least 12" in w for w in warnings) and "s3cr3t" not in warnings[1]
    for bad in ["nocolon", ":password-only-here", "user-only:", "   :x"]:
        with pytest.raises(RagError, match="entry 1 of 1 must look like 'user:password'") as info:
            parse_auth([bad])
        assert bad not in str(info.value)  # a password is never echoed
    with pytest.raises(RagError, match="'alice' twice"):
        parse_auth([f"alice:{PASSWORD}", f"alice:{PASSWORD}2"])


def test_credentials_are_checked_against_every_user():
    from ui.app import credentials_checker

    check = credentials_checker([("alice", PASSWORD), ("bob", "another-long-password")])
    assert check("alice", PASSWORD) and check("bob", "another-long-password")
    assert not check("alice", "another-long-password")  # one user's password does not open another's account
    assert not check("carol", PASSWORD) and not check("", "") and not check("alice", PASSWORD[:-1])
    assert not check("alice", PASSWORD + "x") and not check("alice\udcff", PASSWORD)
    assert not credentials_checker([])("alice", PASSWORD)


# -- failed logins are throttled per client (F4) --------------------------------------------------------------------
def test_login_throttle_locks_out_exponentially_and_forgets():
    from ui.app import LoginThrottle

    now = [1000.0]
    throttle = LoginThrottle(free=3, base_s=1.0, max_s=8.0, window_s=60.0, max_clients=4, clock=lambda: now[0])
    assert [throttle.failed("a") for _ in range(2)] == [0.0, 0.0] and throttle.retry_after("a") == 0
    assert throttle.failed("a") == 1.0 and throttle.retry_after("a") == 1.0  # the third failure locks
    now[0] += 1.0
    assert throttle.retry_after("a") == 0
    locks = []
    for _ in range(5):
        locks.append(throttle.failed("a"))
        now[0] += locks[-1]
    assert locks == [2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped
    assert throttle.retry_after("b") == 0  # other clients are not affected
    throttle.succeeded("a")
    assert throttle.failures("a") == 0 and throttle.retry_after("a") == 0
    throttle.failed("c")
    now[0] += 61  # failures older than the window are forgotten
    throttle.failed("c")
    assert throttle.failures("c") == 1
    for i in range(10):  # remembered clients are bounded
        throttle.failed(f"x{i}")
    assert len(throttle._failures) <= 4
    assert LoginThrottle.client_key("2001:db8::1") == LoginThrottle.client_key("2001:db8::ffff:2") == "2001:db8::/64"
    assert LoginThrottle.client_key("::ffff:10.1.2.3") == "10.1.2.3" and LoginThrottle.client_key(None) == "unknown"


def _login(url: str, source: str, user: str, password: str):
    import httpx

    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30) as http:
        return http.post(url + "login", data={"username": user, "password": password})


def test_failed_logins_are_throttled_per_client_on_a_real_server(sec_settings, sec_rag):
    """Five wrong passwords from one address (127.0.0.2) lock it out, even with the right password, while another
    address (127.0.0.1) logs in and asks; a burst of parallel guesses is counted guess by guess."""
    from gradio_client import Client
    from ui.app import build_app

    settings = sec_settings.updated(ui={"auth": [f"alice:{PASSWORD}"]})
    with serve(build_app(settings, sec_rag), settings) as url:
        codes = [_login(url, "127.0.0.2", "alice", f"guess-{i}").status_code for i in range(5)]
        assert codes == [400] * 5
        locked = _login(url, "127.0.0.2", "alice", PASSWORD)  # right password, but this client is locked out
        assert locked.status_code == 429, locked.text
        assert int(locked.headers["retry-after"]) >= 1 and "try again in" in locked.json()["detail"]

        other = Client(url, auth=("alice", PASSWORD), verbose=False)  # another client is not affected
        assert other.predict(Q_DEFENSE, api_name="/ask")["refused"] is False

        with ThreadPoolExecutor(max_workers=10) as pool:  # 20 guesses at once from a third address
            burst = list(pool.map(lambda i: _login(url, "127.0.0.3", "alice", f"burst-{i}").status_code, range(20)))
        assert burst.count(400) == 5 and burst.count(429) == 15, burst

        time.sleep(int(locked.headers["retry-after"]) + 0.2)  # the first lockout is short; then the right
        assert _login(url, "127.0.0.2", "alice", PASSWORD).status_code == 200  # password works and clears it
        assert [_login(url, "127.0.0.2", "alice", "wrong").status_code for _ in range(5)] == [400] * 5


# -- /ask arguments (F7) and bounded cost (F5) ----------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (({"text": Q_DEFENSE},), r"question must be a string \(the text of the question\), not an object"),
    (([Q_DEFENSE],), r"question must be a string \(the text of the question\), not a list"),
    ((42,), r"question must be a string \(the text of the question\), not a number"),
    ((True,), r"question must be a string \(the text of the question\), not true/false"),
    ((None,), "question is missing"),
    ((Q_DEFENSE, {"role": "user", "content": "hi"}), "history must be a JSON string holding a list of"),
    ((Q_DEFENSE, 7), "history must be a JSON string holding a list of .* not a number"),
    ((Q_DEFENSE, "[" * 100_000 + "]" * 100_000), "history is nested too deeply"),
    ((Q_DEFENSE, '[{"role": "user", "content": ' + "[" * 50_000 + "]" * 50_000 + "}]"), "nested too deeply"),
    ((Q_DEFENSE, "1" * 10_000), "history is not usable JSON"),
    ((Q_DEFENSE, "", 5), "document_set must be a string .* not a number"),
    ((Q_DEFENSE, "", ["notes"]), "document_set must be a string .* not a list"),
])
def test_bad_arguments_are_readable_errors_naming_the_argument(client, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/ask")


def _raw_call(url: str, data: list) -> tuple[str, dict]:
    """A call without the Python client (what curl does): the SSE event and its data."""
    import httpx

    with httpx.Client(timeout=60) as http:
        event_id = http.post(url + "gradio_api/call/ask", json={"data": data}).json()["event_id"]
        text = http.get(url + f"gradio_api/call/ask/{event_id}").text
    lines = [line for line in text.splitlines() if line.strip()]
    event = next(line for line in reversed(lines) if line.startswith("event:")).split(":", 1)[1].strip()
    payload = json.loads(next(line for line in reversed(lines) if line.startswith("data:")).split(":", 1)[1])
    return event, payload


def test_a_call_with_no_arguments_names_the_missing_question(app_url):
    event, payload = _raw_call(app_url, [])
    assert event == "error"
    assert payload["error"] and "question is missing" in payload["error"] and "(question, history, document_set)" in \
        payload["error"] and "a string" in payload["error"], payload
    event, payload = _raw_call(app_url, [Q_DEFENSE])  # the optional arguments take their defaults
    assert event == "complete" and payload[0]["question"] == Q_DEFENSE and payload[0]["refused"] is False
    from gradio_client import Client

    with pytest.raises(TypeError, match="question"):  # the Python client says so before sending anything
        Client(app_url, verbose=False).predict(api_name="/ask")


def test_history_keeps_only_the_newest_turns_each_capped():
    from gradio import Error
    from rag.types import Turn
    from ui.app import _parse_history

    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "x" * 5000}
               for i in range(1000)]
    turns = _parse_history(json.dumps(history), max_chars=100, max_turns=20)
    assert len(turns) == 20 and turns[0].content.startswith("turn 980 ") and turns[-1].content.startswith("turn 999")
    assert all(len(t.content) == 100 for t in turns)
    assert _parse_history(history, max_chars=10, max_turns=0) == []
    assert _parse_history([Turn("user", "a")], max_turns=5) == [Turn("user", "a")]
    history[995] = {"role": "system", "content": "x"}
    with pytest.raises(Error, match="history item 995 "):  # numbered as sent
        _parse_history(history, max_chars=100, max_turns=20)
    history[995] = {"role": "user", "content": "x"}
    history[10] = {"role": "system", "content": "x"}  # dropped unread
    assert len(_parse_history(history, max_chars=100, max_turns=20)) == 20


def test_an_oversized_call_costs_and_returns_a_bounded_amount(client, sec_settings):
    """A 1 MB question and a 30-turn, 1.5 MB history: answered within seconds, with the question cut (and a note
    saying so), a bounded standalone question and a bounded response."""
    from ui.app import standalone_limit

    limit = sec_settings.answer.max_question_chars
    question = "Why did Moscow refuse? " + "mutual defense clause " * 45_000  # about 1 MB
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{Q_DEFENSE} " * 900}
               for i in range(30)]
    started = time.perf_counter()
    result = client.predict(question, json.dumps(history), api_name="/ask")
    assert time.perf_counter() - started < 20
    assert len(result["question"]) <= limit and result["question"].startswith("Why did Moscow refuse?")
    assert any(f"{len(question):,} characters long" in n for n in result["notes"]), result["notes"]
    assert len(result["standalone_question"]) <= standalone_limit(limit)
    size = len(json.dumps(result))
    budget = sec_settings.retrieval.budget_chars
    assert size < 4 * limit + 6 * budget + 20_000, size  # question, standalone, passages and citations, markup


def test_the_api_drops_history_turns_beyond_the_limit(sec_settings, sec_rag):
    from gradio_client import Client
    from ui.app import build_app

    history = [{"role": "user", "content": Q_DEFENSE}, {"role": "assistant", "content": "It feared wars."}]
    for turns, carried in [(2, True), (1, False)]:  # with one turn kept, only the answer remains: no subject
        settings = sec_settings.updated(answer={"max_history_turns": turns})
        with serve(build_app(settings, sec_rag), settings) as url:
            result = Client(url, verbose=False).predict("And why did they refuse?", json.dumps(history),
                                                        api_name="/ask")
        assert ("mutual defense" in result["standalone_question"]) is carried, result["standalone_question"]


def _drain(gen):
    last = None
    for last in gen:
        pass
    return last


def test_a_chat_session_keeps_no_oversized_text(sec_settings, sec_rag):
    """A 1 MB question in the chat is cut to the question limit before the session stores it, the note is shown
    under the answer, and the session's conversation keeps only the newest turns."""
    from ui.chat import Session, respond
    from ui.engines import Engines

    settings = sec_settings.updated(answer={"max_history_turns": 4})
    engines = Engines(settings, sec_rag)
    limit = settings.answer.max_question_chars
    session = Session()
    huge = Q_DEFENSE + " " + "mutual defense clause " * 45_000
    messages, _, box, session = _drain(respond(engines, huge, session, engines.default_config()))
    assert box == ""
    stored = json.dumps(session.messages) + "".join(t.content for t in session.history)
    assert len(stored) < 20 * limit, len(stored)  # nothing near 1 MB is kept
    assert len(session.messages[0]["content"]) <= limit + 200
    assert all(len(t.content) <= limit for t in session.history)
    assert f"{len(huge.strip()):,} characters long" in session.messages[1]["content"]  # the note, under the answer
    for _ in range(3):
        _drain(respond(engines, "And why did they refuse?", session, engines.default_config()))
    assert len(session.history) == 4 and len(session.answers) == 4
    assert session.history[-2].content == "And why did they refuse?"


# -- load: a bounded soak (issue 11 item 8) -------------------------------------------------------------------------
def _rss_mb() -> float:
    """This process's resident memory (the server runs in it): psutil when installed, else /proc."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    pytest.skip("no way to read this process's memory")


SOAK_CLIENTS, SOAK_QUESTIONS = 8, 5
SOAK_HISTORY_MB = 1
SOAK_GROWTH_MB = 30


def test_soak_concurrent_clients_all_answered_with_flat_memory(app_url, sec_rag):
    """8 API clients × 5 questions each, at once, against one server (concurrency limit 4, so the queue is used):
    all 40 answered, each with the answer the pipeline gives that question alone.

    Memory: every call also sends a 1 MB history (cut to 20 turns of 1,000 characters on arrival), so a server that
    kept any copy of what it was sent would grow by at least 40 MB per round of 40 calls. The server's memory is
    read after a warm-up round of the same calls (allocator arenas, caches, the queue's workers are then in
    place) and again after the measured round; the bound is 30 MB: below one retained copy per call, and several
    times the few MB that Python's allocator wanders by here (measured: +4 MB)."""
    from gradio_client import Client

    questions = [Q_DEFENSE, "What did Zarif say about enrichment during the JCPOA talks?",
                 "How many Russian-speaking Jews live in Israel?", "What is the ‘Look to the East’ policy?",
                 "What is the population of Iran?"]
    turn = "background " * (SOAK_HISTORY_MB * 2**20 // 4 // 11)
    history = json.dumps([{"role": "user" if i % 2 == 0 else "assistant", "content": turn} for i in range(4)])
    assert len(history) >= 0.95 * SOAK_HISTORY_MB * 2**20
    expected = {q: sec_rag.ask(q).answer for q in questions}
    clients = [Client(app_url, verbose=False) for _ in range(SOAK_CLIENTS)]

    def run(c: int) -> list[tuple[str, dict]]:
        out = []
        for i in range(SOAK_QUESTIONS):
            q = questions[(c + i) % len(questions)]
            out.append((q, clients[c].predict(q, history, api_name="/ask")))
        return out

    def round_() -> list[tuple[str, dict]]:
        with ThreadPoolExecutor(max_workers=SOAK_CLIENTS) as pool:
            futures = [pool.submit(run, c) for c in range(SOAK_CLIENTS)]
            return [r for f in as_completed(futures, timeout=300) for r in f.result(timeout=300)]

    round_()  # warm-up
    gc.collect()
    before = _rss_mb()
    started = time.perf_counter()
    results = round_()
    elapsed = time.perf_counter() - started
    gc.collect()
    grown = _rss_mb() - before
    assert len(results) == SOAK_CLIENTS * SOAK_QUESTIONS
    for question, result in results:
        assert result["question"] == question and result["answer"] == expected[question]
    assert elapsed < 240
    print(f"soak: {len(results)} answers in {elapsed:.1f} s, RSS {before:.0f} MB -> {before + grown:.0f} MB")
    assert grown < SOAK_GROWTH_MB, f"server memory grew {grown:.1f} MB over {len(results)} calls"
