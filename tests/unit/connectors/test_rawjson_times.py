"""Page parsing that keeps each item's JSON text, and the fast path of payload time parsing."""

from __future__ import annotations

import json

import pytest

from okrsync.connectors.rawjson import RawItem, parse_page
from okrsync.domain import records
from okrsync.domain.records import RecordError


@pytest.mark.parametrize("text, key", [
    ('{"issues": [{"id": "1", "f": {"a": [1, 2.5, null]}}, {"id": "2"}], "nextPageToken": "x", "isLast": false}',
     "issues"),
    (' [ {"n": 1} , {"n": "\\u00e9\\"q"} ] ', None),
    ('{"total": 2, "issues": [], "names": {"a": "b"}}', "issues"),
    ('{"other": [{"x": 1}]}', "issues"),
    ('[]', None),
    ('{"issues": [1, "s", {"k": true}]}', "issues"),
])
def test_parse_page_equals_json_loads_and_keeps_item_text(text, key):
    value = parse_page(text, key)
    assert value == json.loads(text)
    items = value if key is None else value.get(key, [])
    for item in items:
        if isinstance(item, dict) and (key is None or key in value):
            assert isinstance(item, RawItem) and json.loads(item.json_text) == item


@pytest.mark.parametrize("text, key", [
    ('{"issues": [{"id": 1, "v": NaN, "big": 123456789012345678901234567890}], "x": Infinity}', "issues"),
    ('[{"id": 18446744073709551616}]', None),
    ('[{"id": -9223372036854775809}]', None),
    ('[{"id": 1, "n": [7,\n\t12345678901234567890]}]', None),
    ('[{"id": [12345678901234567890]}]', None),
])
def test_what_only_the_json_module_accepts_is_parsed_with_each_items_exact_text(text, key):
    value = parse_page(text, key)
    items = value if key is None else value[key]
    assert repr(value) == repr(json.loads(text))  # exact integers, NaN as json.loads reads them
    assert isinstance(items[0], RawItem) and items[0].json_text == text[text.index("[") + 1:text.rindex("]")]


def test_a_top_level_long_number_is_exact():
    assert repr(parse_page("12345678901234567890123", None)) == "12345678901234567890123"


@pytest.mark.parametrize("text", [
    '{"issues": [ {"sha": "9a1234567890123456789012345b", "id": 1} ]}',   # digits inside strings
    '{"issues": [ {"sha": "1234567890123456789012345678", "id": 1} ]}',
    '{"issues": [ {"at": 1.1234567890123456789012, "id": 1} ]}',           # fraction digits: a float either way
])
def test_long_digit_runs_that_are_not_integers_take_the_fast_path(text):
    value = parse_page(text, "issues")
    assert value == json.loads(text)
    assert value["issues"][0].json_text == json.dumps(json.loads(text)["issues"][0], separators=(",", ":"))


def test_item_text_is_compact_json_of_the_item():
    value = parse_page('{"issues": [ {"id": "1", "f": {"x": "\u00e9", "n": [1, 2.5]}} ], "isLast": true}', "issues")
    assert value["issues"][0].json_text == '{"id":"1","f":{"x":"\u00e9","n":[1,2.5]}}'.replace("\\u00e9", "\u00e9")
    assert value["isLast"] is True


@pytest.mark.parametrize("text", ['{"issues": [1,', '[1 2]', '{"a": 1} x', '', '{"issues": [{"a": }]}', '[{"a":1},]'])
def test_parse_page_rejects_what_json_rejects(text):
    with pytest.raises(ValueError):
        parse_page(text, "issues")


@pytest.mark.parametrize("text", [
    "2026-10-05T09:00:00.000+0200", "2026-10-05T09:00:00Z", "2026-03-29T02:30:00.5-0700",
    "2026-10-05T09:00:00.123456+05:30", "2026-10-05T09:00:00+0000", "2026-10-05T23:59:59.999-1200",
    "2026-10-05T09:00:00.123456789Z", "2026-10-05 09:00:00", "2026-10-05", " 2026-10-05T09:00:00Z ",
])
def test_fast_path_equals_the_general_path(text):
    assert records.parse_time(text, "x") == records._parse_general(text)
    assert records.parse_iso(text) == records._parse_general(text)


@pytest.mark.parametrize("value", ["2026-13-01T00:00:00.000+0000", "yesterday", 5])
def test_fast_times_fail_like_records(value):
    with pytest.raises(RecordError) as exc:
        records.parse_time(value, "created")
    assert str(exc.value) == f"bad created time {value!r}"
