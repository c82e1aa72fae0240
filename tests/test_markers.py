"""The one citation-marker syntax (rag.markers): parsing, stripping, renumbering, escaping. Pure functions."""

from __future__ import annotations

import pytest

from rag import markers


@pytest.mark.parametrize("text,expected", [
    ("Ukraine [1].", [1]),
    ("Ukraine [1, 2].", [1, 2]),
    ("Ukraine [1; 2].", [1, 2]),
    ("Ukraine [1-3].", [1, 2, 3]),
    ("Ukraine [2–4].", [2, 3, 4]),
    ("Ukraine [1][2] and [ 3 ].", [1, 2, 3]),
    ("A range too wide is two numbers [1-1999].", [1, 1999]),
    ("No markers [a] [] [x1] here.", []),
    (r"Sounded \[2] times [1].", [1]),
])
def test_numbers_understands_every_form(text, expected):
    assert markers.numbers(text) == expected


def test_markers_round_trip_through_format_and_find():
    for numbers in ([1], [1, 2], [3, 1, 2]):
        text = f"Claim {markers.format_marker(numbers)}."
        assert markers.cited(text) == numbers
        assert markers.strip(text) == "Claim."


def test_strip_closes_up_spaces_and_keeps_literal_brackets():
    assert markers.strip("Russia's priority is Ukraine [1] [2].") == "Russia's priority is Ukraine."
    assert markers.plain(r"The siren sounded \[2] times [1].") == "The siren sounded [2] times."


def test_renumber_maps_and_drops():
    assert markers.renumber("A [3]. B [1, 3]. C [2].", {3: 1, 1: 2}) == "A [1]. B [2][1]. C."


def test_escape_literal_makes_document_brackets_inert_and_unescape_restores_them():
    quote = "Bells rang [2] times, [3-4] on Sundays."
    escaped = markers.escape_literal(quote)
    assert markers.numbers(escaped) == []
    assert markers.unescape(escaped) == quote
    assert markers.escape_literal(escaped) == escaped  # escaping twice changes nothing


def test_replace_sees_each_marker_with_its_position():
    text = "A [1]. B [2, 3]."
    found = markers.find(text)
    assert [(text[m.start:m.end], m.numbers) for m in found] == [("[1]", (1,)), ("[2, 3]", (2, 3))]
    assert markers.replace(text, lambda m: "<%s>" % ",".join(map(str, m.numbers))) == "A <1>. B <2,3>."


def test_move_inside_keeps_markers_with_their_sentence():
    assert markers.move_inside("Iran. [1] Russia. [2]") == "Iran [1]. Russia [2]."
