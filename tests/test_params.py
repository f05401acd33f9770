"""Unit tests for CMQ request decoding: the fast form decoder must agree with parse_qsl."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, urlencode

import pytest

from broker.errors import ListNotContiguous, MalformedRequest, MissingParameter, TooManyItems
from broker.protocol.cmq.params import MAX_FIELDS, Params, decode_pairs


def reference(text: str):
    try:
        return parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return "error"


def ours(text: str):
    try:
        return decode_pairs(text)
    except MalformedRequest:
        return "error"


def test_decoder_agrees_with_parse_qsl():
    rng = random.Random(1234)
    cases = ["", "a=1&b=&c", "&&a=%20+x&=v&k=", "x=%E4%BD%A0+a%2Bb%26c", "=&=", "a==b", "a=%zz&b=%", "a=%2", "a;b=c"]
    for _ in range(3000):
        cases.append(urlencode({
            "".join(rng.choice("ab%+=&é ;_.") for _ in range(5)): "".join(rng.choice("ab%+=&é ;x1") for _ in range(8))
            for _ in range(3)
        }))
        cases.append("".join(rng.choice("ab%+=&2F ;C8") for _ in range(12)))
    for text in cases:
        assert ours(text) == reference(text), text


def test_too_many_fields():
    with pytest.raises(MalformedRequest):
        decode_pairs("&".join(f"k{i}=v" for i in range(MAX_FIELDS + 1)))


def test_lists():
    p = Params(decode_pairs("msgBody.1=a&msgBody.2=b&other.1=x"))
    assert p.list("msgBody") == ["a", "b"]
    assert Params(decode_pairs("msgBody.0=a&msgBody.1=b")).list("msgBody") == ["a", "b"]
    assert Params(decode_pairs("x=1")).list("msgBody", required=False) == []
    with pytest.raises(MissingParameter):
        Params(decode_pairs("x=1")).list("msgBody")
    with pytest.raises(ListNotContiguous):
        Params(decode_pairs("msgBody.2=a&msgBody.3=b")).list("msgBody")
    with pytest.raises(TooManyItems):
        Params(decode_pairs("&".join(f"msgBody.{i}=m" for i in range(1, 18)))).list("msgBody")


def test_parse_equals_decode_then_params():
    for text in ["", "a=1&b=2", "Action=SendMessage&msgBody=a+b%20c&queueName=q", "k=&=v&&x=%E2%82%AC",
                 "msgBody.1=a&msgBody.2=b"]:
        one = Params.parse(text)
        two = Params(decode_pairs(text))
        assert one.pairs == two.pairs and one._values == two._values, text
    for bad in ["a=1&A=2", "a=%FF"]:
        errors = []
        for make in (lambda t: Params.parse(t), lambda t: Params(decode_pairs(t))):
            try:
                make(bad)
            except Exception as exc:  # the same domain error either way
                errors.append(type(exc))
        assert len(errors) == 2 and errors[0] is errors[1], bad
