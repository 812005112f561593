"""Parse a page of JSON keeping each listed item's JSON text, so the store keeps the payload without json.dumps.

`parse_page(text, key)` is json.loads(text), except that the items of the list at top-level `key` (or of the
top-level list when key is None) come back as RawItem: a dict that also carries `json_text`, its JSON.
orjson parses the page and writes each item back compactly (together ~2x faster than json.loads alone: parsing
is most of a large sync's CPU). What orjson refuses or would change but json.loads reads (NaN, integers beyond
64 bits) goes through the json module's own C scanner, which keeps each item's exact text.
"""

from __future__ import annotations

import json
from json.decoder import WHITESPACE, scanstring  # type: ignore[attr-defined]
from typing import Any

import orjson

# A number of 19 digits or more may be an integer beyond 64 bits, which orjson would read as a float (losing
# digits). Found without a regex (which costs more than the parse): every byte maps to "0" for a digit, ":" for
# what can come right before a number's first digit (: , [ - and whitespace), "." for anything else; such a
# number is then ":" and 19 "0"s. Digits inside a string (a commit SHA's: 8 in 30 pages of pull requests) follow
# a letter or a quote and do not count; a string with such a run after a space or a comma only takes the exact
# path, which is slower, never wrong.
_NUMBER_MARKS = bytes(0x30 if 0x30 <= c <= 0x39 else 0x3A if c in b":,[- \t\r\n" else 0x2E for c in range(256))
_LONG_NUMBER = b":" + b"0" * 19
_SCAN = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[attr-defined]


class RawItem(dict[str, Any]):
    """A payload parsed from a page; json_text is its JSON as the API sent it. Treat it as read-only."""

    __slots__ = ("json_text",)
    json_text: str


def _ws(text: str, i: int) -> int:
    end: int = WHITESPACE.match(text, i).end()  # json.decoder.WHITESPACE is untyped
    return end


def _fail(text: str, i: int, what: str) -> ValueError:
    return json.JSONDecodeError(f"expected {what}", text, i)


def _items(text: str, i: int) -> tuple[list[Any], int]:
    """The array starting at text[i] == '['; dict elements become RawItem."""
    out: list[Any] = []
    i = _ws(text, i + 1)
    if text[i:i + 1] == "]":
        return out, i + 1
    while True:
        try:
            value, end = _SCAN(text, i)
        except StopIteration:
            raise _fail(text, i, "a value") from None
        if type(value) is dict:
            item = RawItem(value)
            item.json_text = text[i:end]
            value = item
        out.append(value)
        i = _ws(text, end)
        sep = text[i:i + 1]
        if sep == "]":
            return out, i + 1
        if sep != ",":
            raise _fail(text, i, "',' or ']'")
        i = _ws(text, i + 1)


def parse_page(text: str, key: str | None = None) -> Any:
    """json.loads(text) with the items of the list at `key` (None: the top-level list) as RawItem."""
    data = text.encode()  # orjson reads these bytes too (from a str it would encode it again)
    marks = data.translate(_NUMBER_MARKS)
    if _LONG_NUMBER in marks or marks.startswith(_LONG_NUMBER[1:]):
        return parse_exact(text, key)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return parse_exact(text, key)  # NaN and Infinity are read there; invalid JSON raises as json.loads does
    items = value if key is None else value.get(key) if type(value) is dict else None
    if type(items) is list:
        for n, item in enumerate(items):
            if type(item) is dict:
                raw = items[n] = RawItem(item)
                raw.json_text = orjson.dumps(item).decode()
    return value


def parse_exact(text: str, key: str | None = None) -> Any:
    """parse_page with the json module's scanner: each item's json_text is its exact text in the page."""
    i = _ws(text, 0)
    value: Any
    if key is None:
        if text[i:i + 1] != "[":
            return json.loads(text)
        value, end = _items(text, i)
    elif text[i:i + 1] != "{":
        return json.loads(text)
    else:
        value, end = _object(text, i, key)
    if _ws(text, end) != len(text):
        raise _fail(text, end, "the end of the document")
    return value


def _object(text: str, i: int, key: str) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    i = _ws(text, i + 1)
    if text[i:i + 1] == "}":
        return out, i + 1
    while True:
        if text[i:i + 1] != '"':
            raise _fail(text, i, "a property name")
        name, i = scanstring(text, i + 1)
        i = _ws(text, i)
        if text[i:i + 1] != ":":
            raise _fail(text, i, "':'")
        i = _ws(text, i + 1)
        if name == key and text[i:i + 1] == "[":
            value, i = _items(text, i)
        else:
            try:
                value, i = _SCAN(text, i)
            except StopIteration:
                raise _fail(text, i, "a value") from None
        out[name] = value
        i = _ws(text, i)
        sep = text[i:i + 1]
        if sep == "}":
            return out, i + 1
        if sep != ",":
            raise _fail(text, i, "',' or '}'")
        i = _ws(text, i + 1)
