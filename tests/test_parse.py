"""parse_message on raw bytes: the .eml corpus, charsets, HTML, attachments, keys, size cap, fuzzing."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import MessageError
from service.mail.message import ParsedMessage
from service.mail.parse import model_text, parse_message

CORPUS = Path(__file__).parent / "data" / "eml"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "EXPECTED.json").read_text(encoding="utf-8"))
EML_FILES = sorted(p.name for p in CORPUS.glob("*.eml"))
EXACT_FIELDS = ("subject", "sender", "sender_name", "message_id", "in_reply_to", "date", "language", "truncated")


def mail(body: bytes, *, ctype: str = "text/plain; charset=utf-8", cte: str = "8bit", extra: bytes = b"") -> bytes:
    return (
        b"From: Customer <customer@example.com>\r\nTo: support@shop.example\r\nSubject: Test\r\n"
        b"Message-ID: <t@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: " + ctype.encode()
        + b"\r\nContent-Transfer-Encoding: " + cte.encode() + b"\r\n" + extra + b"\r\n" + body
    )


def test_corpus_is_big_enough_and_fully_described() -> None:
    assert len(EML_FILES) >= 35
    assert sorted(EXPECTED) == EML_FILES


@pytest.mark.parametrize("name", EML_FILES)
def test_corpus_mail_matches_expected(name: str) -> None:
    facts = EXPECTED[name]
    parsed = parse_message((CORPUS / name).read_bytes())

    assert isinstance(parsed, ParsedMessage)
    for field in EXACT_FIELDS:
        if field in facts:
            assert getattr(parsed, field) == facts[field], field
    if "references" in facts:
        assert list(parsed.references) == facts["references"]
    if "key_prefix" in facts:
        assert parsed.key.startswith(facts["key_prefix"])
    for phrase in facts.get("contains", []):
        assert phrase in parsed.text
    for phrase in facts.get("not_contains", []):
        assert phrase not in parsed.text
    for phrase in facts.get("body_contains", []):
        assert phrase in parsed.body
    for phrase in facts.get("body_not_contains", []):
        assert phrase not in parsed.body
    if facts.get("text_is_subject"):
        assert parsed.text == parsed.subject
    for code in facts.get("defects", []):
        assert code in parsed.defects


@pytest.mark.parametrize("name", EML_FILES)
def test_corpus_output_is_clean(name: str) -> None:
    parsed = parse_message((CORPUS / name).read_bytes())
    for value in (parsed.text, parsed.body, parsed.subject, parsed.sender_name):
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogates left from 8-bit bytes
    assert len(parsed.text) <= 20000
    assert parsed.key
    assert all(code.isascii() and " " not in code and len(code) < 40 for code in parsed.defects)


@pytest.mark.parametrize(
    ("charset", "encoding", "text"),
    [
        ("windows-1256", "cp1256", "سأرفع دعوى قضائية ضد شركتكم إذا لم تعيدوا المبلغ"),
        ("windows-1255", "cp1255", "אגיש נגדכם תביעה משפטית אם לא תחזירו את הכסף"),
        ("iso-8859-6", "iso-8859-6", "سأرفع دعوى قضائية ضد شركتكم"),
        ("iso-8859-8", "iso-8859-8", "אגיש נגדכם תביעה משפטית"),
        ("iso-8859-8-i", "iso-8859-8", "אגיש נגדכם תביעה משפטית"),
        ("koi8-r", "koi8-r", "Я обращусь в суд, если деньги не вернутся"),
        ("utf-8", "utf-8", "Ich werde meinen Anwalt einschalten — تهديد — איום"),
        ("windows-1251", "cp1251", "Я обращусь в суд, если деньги не вернутся"),
        ("iso-8859-1", "latin-1", "Je porterai plainte contre votre société, c'est déjà décidé"),
        ("windows-1254", "cp1254", "Sizi mahkemeye vereceğim, paramı iade edin"),
    ],
)
@pytest.mark.parametrize("cte", ["8bit", "base64", "quoted-printable"])
def test_declared_charset_decodes_to_the_right_text(charset: str, encoding: str, text: str, cte: str) -> None:
    data = text.encode(encoding)
    if cte == "base64":
        data = base64.encodebytes(data)
    elif cte == "quoted-printable":
        data = "".join(f"={b:02X}" if b > 126 or b == 61 else chr(b) for b in data).encode("ascii")
    parsed = parse_message(mail(data, ctype=f"text/plain; charset={charset}", cte=cte))
    assert parsed.body == text
    assert text in parsed.text


def test_unknown_charset_falls_back_to_utf8() -> None:
    parsed = parse_message(mail("Grüße aus Köln".encode(), ctype="text/plain; charset=x-nonsense"))
    assert parsed.body == "Grüße aus Köln"
    assert "charset_unknown" in parsed.defects


def test_undeclared_8bit_cp1256_is_detected() -> None:
    text = "شكرا جزيلا على ردكم السريع. لقد وصل الطرد اليوم وكل شيء على ما يرام."
    parsed = parse_message(mail(text.encode("cp1256"), ctype="text/plain"))
    assert parsed.body == text
    assert parsed.language == "ar"


def test_rfc2047_subject_and_from_in_several_charsets() -> None:
    subject = base64.b64encode("تهديد".encode("cp1256")).decode()
    name = base64.b64encode("Иван".encode("koi8-r")).decode()
    raw = (
        f"From: =?koi8-r?B?{name}?= <Ivan@Example.RU>\r\nReply-To: other@example.net\r\n"
        f"Subject: =?windows-1256?B?{subject}?= =?utf-8?Q?=D7=90?=\r\n\r\nhi\r\n"
    ).encode()
    parsed = parse_message(raw)
    assert parsed.subject == "تهديدא"
    assert parsed.sender_name == "Иван"
    assert parsed.sender == "ivan@example.ru"


def test_html_only_is_converted_to_text() -> None:
    html = b"<html><body><h1>Refund</h1><p>I was charged <i>twice</i>.</p><script>x=1</script></body></html>"
    parsed = parse_message(mail(html, ctype="text/html; charset=utf-8"))
    assert "I was charged twice." in parsed.text
    assert "<" not in parsed.text and "x=1" not in parsed.text


def test_plain_alternative_is_preferred_over_html() -> None:
    body = (
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>HTML version</p>\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nPlain version\r\n--b--\r\n"
    )
    parsed = parse_message(mail(body, ctype="multipart/alternative; boundary=b"))
    assert parsed.body == "Plain version"


def test_empty_plain_alternative_falls_back_to_html() -> None:
    body = (
        b"--b\r\nContent-Type: text/plain\r\n\r\n \r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>Only here</p>\r\n--b--\r\n"
    )
    parsed = parse_message(mail(body, ctype="multipart/alternative; boundary=b"))
    assert "Only here" in parsed.body


def test_attachments_are_ignored() -> None:
    body = (
        b"--m\r\nContent-Type: text/plain\r\n\r\nPlease see the attached photos.\r\n"
        b"--m\r\nContent-Type: text/plain; name=notes.txt\r\n"
        b"Content-Disposition: attachment; filename=notes.txt\r\n\r\n"
        b"ATTACHED TEXT\r\n"
        b"--m\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/4AAQSkZJRg==\r\n"
        b"--m\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.z\r\nSubject: old\r\n\r\nFORWARDED TEXT\r\n--m--\r\n"
    )
    parsed = parse_message(mail(body, ctype="multipart/mixed; boundary=m"))
    assert parsed.body == "Please see the attached photos."


def test_inline_text_parts_around_an_image_are_all_kept() -> None:
    body = (
        b"--m\r\nContent-Type: text/plain\r\n\r\nFirst half.\r\n"
        b"--m\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\n\r\nPNG\r\n"
        b"--m\r\nContent-Type: text/plain\r\n\r\nSecond half.\r\n--m--\r\n"
    )
    parsed = parse_message(mail(body, ctype="multipart/mixed; boundary=m"))
    assert "First half." in parsed.text and "Second half." in parsed.text


def test_missing_message_id_gives_a_stable_sha256_key() -> None:
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
        b"Subject: Hi\r\n\r\nbody\r\n"
    )
    first, second = parse_message(raw), parse_message(raw)
    assert first.key == second.key
    assert first.key.startswith("sha256:") and len(first.key) == len("sha256:") + 64
    assert first.message_id is None
    refolded = raw.replace(b"Subject: Hi", b"Subject:\r\n Hi")
    assert parse_message(refolded).key == first.key
    assert parse_message(raw.replace(b"body", b"other")).key != first.key
    assert parse_message(raw.replace(b"Subject: Hi", b"Subject: Ho")).key != first.key


def test_message_id_is_the_key_when_present() -> None:
    parsed = parse_message(mail(b"hi"))
    assert parsed.key == parsed.message_id == "<t@example.com>"


def test_sender_is_the_bare_lower_cased_from_address_not_reply_to() -> None:
    raw = b'From: "Doe, John" <John.Doe@Example.COM>\r\nReply-To: attacker@evil.example\r\nSubject: x\r\n\r\nhi\r\n'
    parsed = parse_message(raw)
    assert parsed.sender == "john.doe@example.com"
    assert parsed.sender_name == "Doe, John"


def test_size_cap_truncates_text_and_says_so() -> None:
    body = ("word " * 5000).encode()
    parsed = parse_message(mail(body), max_chars=1000)
    assert len(parsed.text) == 1000
    assert parsed.truncated
    small = parse_message(mail(b"short"), max_chars=1000)
    assert not small.truncated and small.text == "Test\nshort"


def test_model_text_joins_subject_and_new_part_of_body() -> None:
    body = "Thanks, all good now.\n\nOn Mon, Jan 1, 2024 at 9:00 AM Bob <bob@example.com> wrote:\n> I will sue you\n"
    assert model_text("Re: order", body) == "Re: order\nThanks, all good now."
    assert model_text("", "just body") == "just body"
    assert model_text("Subject", "x" * 100, max_chars=10) == "Subject\nxx"


def test_parse_message_text_is_model_text() -> None:
    parsed = parse_message((CORPUS / "56_gmail_reply_en_typical.eml").read_bytes())
    assert parsed.text == model_text(parsed.subject, parsed.body)


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  ", b"\x00\x00\x00", b"just some words, no headers\r\n"])
def test_not_a_mail_raises_message_error(raw: bytes) -> None:
    with pytest.raises(MessageError):
        parse_message(raw)


def test_str_input_raises_message_error() -> None:
    with pytest.raises(MessageError):
        parse_message("From: a@b.c\r\n\r\nhi")  # type: ignore[arg-type]


def _seeds() -> list[bytes]:
    # Small corpus mails only: mutating the 5 MB one would make each example slow.
    return [(CORPUS / n).read_bytes() for n in EML_FILES if (CORPUS / n).stat().st_size < 20000]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_seeds()),
    cuts=st.lists(st.tuples(st.floats(0, 1), st.binary(max_size=8)), max_size=6),
    truncate=st.floats(0.05, 1),
)
def test_mutated_corpus_mails_never_raise_anything_but_message_error(
    seed: bytes, cuts: list[tuple[float, bytes]], truncate: float
) -> None:
    data = bytearray(seed[: max(1, int(len(seed) * truncate))])
    for where, junk in cuts:
        at = int(where * len(data))
        data[at : at + len(junk)] = junk
    try:
        parsed = parse_message(bytes(data))
    except MessageError:
        return
    parsed.text.encode("utf-8")
    parsed.subject.encode("utf-8")
    parsed.sender_name.encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_anything_but_message_error(data: bytes) -> None:
    with contextlib.suppress(MessageError):
        parse_message(data)
