"""Write the corpus of hostile and broken mails, and EXPECTED.json, into this directory.

Run from anywhere: ``python tests/data/eml/make_corpus.py``. The .eml files are
committed as generated; this script is how they were made and how to review
or change them. Each mail is built from raw bytes on purpose (no
``email.message`` objects), because the point is bytes that a well-behaved
library would never produce.

EXPECTED.json maps a file name to facts that tests/test_parse.py checks:
``subject``, ``sender``, ``sender_name``, ``message_id``, ``in_reply_to``,
``references``, ``date``, ``language`` (exact values); ``key_prefix``;
``contains`` / ``not_contains`` (phrases of ``ParsedMessage.text``);
``body_contains`` / ``body_not_contains`` (phrases of ``ParsedMessage.body``);
``text_is_subject`` (the body contributed nothing); ``truncated``;
``defects`` (codes that must be among ``ParsedMessage.defects``).
"""

from __future__ import annotations

import base64
import binascii
import json
import quopri
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CRLF = b"\r\n"

# Sentences used across the corpus: a friendly customer reply and an older
# threat that it may quote, in each language.
EN_OK = "Thank you so much for the quick help. The parcel arrived today and everything works fine."
EN_THREAT = "If you do not refund me by Friday I will take you to court and ruin your company."
AR_OK = "شكرا جزيلا على ردكم السريع. لقد وصل الطرد اليوم وكل شيء على ما يرام. أتمنى لكم يوما سعيدا."
AR_THREAT = "إذا لم تعيدوا أموالي خلال ثلاثة أيام فسأرفع دعوى قضائية ضد شركتكم."
HE_OK = "תודה רבה על התשובה המהירה. החבילה הגיעה היום והכול תקין. שיהיה לכם יום נפלא."
HE_THREAT = "אם לא תחזירו לי את הכסף תוך שלושה ימים, אגיש נגדכם תביעה משפטית."
RU_OK = "Спасибо за быстрый ответ. Посылка пришла сегодня, и всё работает отлично. Хорошего вам дня."
RU_THREAT = "Если деньги не вернутся до пятницы, я обращусь в суд и к журналистам."
FR_OK = "Bonjour, merci beaucoup pour votre aide rapide. Le colis est bien arrivé et tout fonctionne très bien."
FR_THREAT = "Si vous ne me remboursez pas avant vendredi, je porterai plainte contre votre société."
DE_OK = "Vielen Dank für die schnelle Hilfe. Das Paket ist heute angekommen und alles funktioniert einwandfrei."
DE_THREAT = "Wenn Sie mir das Geld nicht bis Freitag zurückzahlen, werde ich meinen Anwalt einschalten."
ES_OK = "Muchas gracias por su rápida respuesta. El paquete llegó hoy y todo funciona perfectamente, señor."
ES_THREAT = "Si no me devuelven el dinero antes del viernes, presentaré una denuncia contra su empresa."
TR_OK = "Hızlı yanıtınız için çok teşekkür ederim. Paket bugün geldi ve her şey yolunda gidiyor."
TR_THREAT = "Paramı cuma gününe kadar iade etmezseniz sizi mahkemeye vereceğim."
FA_OK = "سلام، از پاسخ سریع شما بسیار سپاسگزارم. بسته امروز به دستم رسید و همه چیز درست است. روز خوبی داشته باشید."

# Invisible bidi controls as RTL clients insert them.
RLM, LRM, RLE, PDF, RLI, PDI = "\u200f", "\u200e", "\u202b", "\u202c", "\u2067", "\u2069"

CORPUS: dict[str, tuple[bytes, dict[str, Any]]] = {}


def add(name: str, raw: bytes, **expected: Any) -> None:
    assert name not in CORPUS, name
    CORPUS[name] = (raw, expected)


def head(*fields: tuple[str, str | bytes], message_id: str | None = "auto", name: str = "") -> bytes:
    """Header block (without the blank line); str values must be ASCII, bytes go in raw."""
    lines = []
    if message_id == "auto":
        message_id = f"<{name or 'corpus'}@corpus.warningshot.test>"
    if message_id is not None:
        fields = (("Message-ID", message_id), *fields)
    for key, value in fields:
        raw = value if isinstance(value, bytes) else value.encode("ascii")
        lines.append(key.encode("ascii") + b": " + raw)
    return CRLF.join(lines) + CRLF


def simple(
    name: str,
    body: bytes,
    *,
    ctype: str = "text/plain; charset=utf-8",
    cte: str | None = "8bit",
    subject: str | bytes = "Corpus mail",
    extra: tuple[tuple[str, str | bytes], ...] = (),
    message_id: str | None = "auto",
    **expected: Any,
) -> None:
    fields: list[tuple[str, str | bytes]] = [
        ("From", "Customer <customer@example.com>"),
        ("To", "support@shop.example"),
        ("Subject", subject),
        ("Date", "Mon, 01 Jan 2024 10:00:00 +0100"),
        ("MIME-Version", "1.0"),
        ("Content-Type", ctype),
    ]
    if cte:
        fields.append(("Content-Transfer-Encoding", cte))
    fields.extend(extra)
    add(name, head(*fields, message_id=message_id, name=name.removesuffix(".eml")) + CRLF + body, **expected)


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", CRLF)


def qp(data: bytes) -> bytes:
    return quopri.encodestring(data.replace(CRLF, b"\n")).replace(b"\n", CRLF)


def crlf(text: str, encoding: str = "utf-8") -> bytes:
    return text.replace("\n", "\r\n").encode(encoding)


def multipart(boundary: str, *parts: bytes, close: bool = True) -> bytes:
    out = b"This is a multi-part message in MIME format." + CRLF
    for part in parts:
        out += b"--" + boundary.encode() + CRLF + part + CRLF
    if close:
        out += b"--" + boundary.encode() + b"--" + CRLF
    return out


def part(ctype: str, body: bytes, cte: str | None = None, disposition: str | None = None) -> bytes:
    lines = [b"Content-Type: " + ctype.encode()]
    if cte:
        lines.append(b"Content-Transfer-Encoding: " + cte.encode())
    if disposition:
        lines.append(b"Content-Disposition: " + disposition.encode())
    return CRLF.join(lines) + CRLF + CRLF + body


def mime_mail(name: str, ctype: str, body: bytes, *, subject: str | bytes = "Corpus mail", **expected: Any) -> None:
    simple(name, body, ctype=ctype, cte=None, subject=subject, **expected)


# --- charsets ---------------------------------------------------------------

simple("01_plain_utf8_qp.eml", qp(("Hello,\n\n" + EN_OK + "\n").encode()), cte="quoted-printable",
       subject="Order 1001", sender="customer@example.com", sender_name="Customer", language="en",
       message_id="<01_plain_utf8_qp@corpus.warningshot.test>", date="2024-01-01T10:00:00+01:00",
       contains=["Order 1001", "parcel arrived today"])
simple("02_cp1256_arabic.eml", crlf(AR_OK + "\n", "cp1256"), ctype="text/plain; charset=windows-1256",
       language="ar", contains=["وصل الطرد اليوم"])
simple("03_cp1255_hebrew_base64.eml", b64((HE_OK + "\n").encode("cp1255")), cte="base64",
       ctype='text/plain; charset="windows-1255"', language="he", contains=["החבילה הגיעה היום"])
simple("04_iso8859_6_arabic_qp.eml", qp((AR_OK.replace("،", ",") + "\n").encode("iso-8859-6")),
       cte="quoted-printable", ctype="text/plain; charset=ISO-8859-6", language="ar", contains=["وصل الطرد"])
simple("05_iso8859_8_hebrew.eml", crlf(HE_OK + "\n", "iso-8859-8"), ctype="text/plain; charset=iso-8859-8",
       language="he", contains=["תודה רבה"])
simple("06_iso8859_8_i_hebrew.eml", crlf(HE_OK + "\n", "iso-8859-8"), ctype="text/plain; charset=iso-8859-8-i",
       language="he", contains=["תודה רבה"])
simple("07_koi8r_russian.eml", crlf(RU_OK + "\n", "koi8-r"), ctype="text/plain; charset=koi8-r",
       language="ru", contains=["Посылка пришла сегодня"])
simple("08_unknown_charset.eml", crlf(DE_OK + "\n"), ctype="text/plain; charset=x-klingon-7",
       language="de", contains=["Paket ist heute angekommen"], defects=["charset_unknown"])
simple("09_mislabelled_latin1_is_cp1256.eml", crlf(AR_OK + "\n" + AR_OK + "\n", "cp1256"),
       ctype="text/plain; charset=iso-8859-1", language="ar", contains=["وصل الطرد اليوم"],
       defects=["charset_mislabelled"])
simple("10_mislabelled_utf8_is_cp1252.eml", crlf(FR_OK + "\n", "cp1252"), ctype="text/plain; charset=utf-8",
       language="fr", contains=["bien arrivé", "très bien"], defects=["charset_mismatch"])
simple("11_undeclared_8bit_utf8.eml", crlf(DE_OK + "\n"), ctype="text/plain",
       language="de", contains=["für die schnelle Hilfe"], defects=["charset_undeclared"])
simple("12_undeclared_8bit_cp1251.eml", crlf(RU_OK + "\n" + RU_OK + "\n", "cp1251"), ctype="text/plain",
       language="ru", contains=["Посылка пришла сегодня"], defects=["charset_guessed"])
# windows-1256 has no Farsi yeh (U+06CC); Persian senders using it type the Arabic yeh.
simple("13_persian_cp1256.eml", crlf(FA_OK.replace("\u06cc", "\u064a") + "\n", "cp1256"),
       ctype="text/plain; charset=windows-1256", language="fa", contains=["بسته امروز"])

# --- transfer encodings and truncation ---------------------------------------

mime_mail("14_truncated_mid_part.eml", 'multipart/mixed; boundary="cut"', (
    b"--cut" + CRLF + part("text/plain; charset=utf-8", crlf(EN_OK + "\n")) + CRLF
    + b"--cut" + CRLF + b"Content-Type: application/pdf; name=invoice.pdf" + CRLF
    + b"Content-Transfer-Encoding: base64" + CRLF + b"Content-Disposition: attachment" + CRLF + CRLF
    + b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZUR"),
    contains=["parcel arrived today"], defects=["close_boundary_not_found"])
mime_mail("15_truncated_mid_text.eml", 'multipart/alternative; boundary="cut"', (
    b"--cut" + CRLF + part("text/plain; charset=utf-8", b"This message was cut in the mid")),
    contains=["This message was cut in the mid"], defects=["close_boundary_not_found"])
mime_mail("16_missing_close_boundary.eml", "multipart/mixed; boundary=b1", multipart(
    "b1", part("text/plain; charset=utf-8", crlf(EN_OK)),
    part("image/png", b64(b"\x89PNG\r\n\x1a\n" + bytes(32)), "base64", "attachment; filename=a.png"), close=False),
    contains=["parcel arrived today"], defects=["close_boundary_not_found"])
_broken = b64((EN_OK + " Order 4411.").encode())
simple("17_broken_base64.eml", _broken[:20] + b"!!*~" + _broken[20:-4].rstrip(b"=") + CRLF + b"%%%" + CRLF,
       cte="base64", contains=["Thank you so much"], defects=["invalid_base64_characters"])
simple("18_broken_qp.eml", b"Caf=E9 cr=E8me =ZZ and a soft=\r\n break, then a trailing =\r\n=\r\n=4",
       cte="quoted-printable", ctype="text/plain; charset=iso-8859-1", contains=["Café crème", "soft break"])
_uu_lines = [binascii.b2a_uu(chunk).rstrip(b"\n") for chunk in [b"Please cancel order 77", b" and refund me today."]]
simple("19_uuencoded_body.eml", CRLF.join([b"begin 644 note.txt", *_uu_lines, b"`", b"end", b""]),
       cte="x-uuencode", contains=["Please cancel order 77 and refund me today."])
simple("20_unknown_transfer_encoding.eml", crlf(EN_OK + "\n"), cte="x-gzip64-ish", contains=["parcel arrived"])

_big_line = ("Log line with nothing of interest in it at all, repeated to make a very large body. " * 12 + "\n")
_big = "START-OF-BIG-BODY\n" + _big_line * (5_300_000 // len(_big_line)) + "END-OF-BIG-BODY\n"
simple("21_huge_5mb.eml", crlf(_big), truncated=True, contains=["START-OF-BIG-BODY"],
       not_contains=["END-OF-BIG-BODY"], defects=["body_truncated"])

# --- structure ---------------------------------------------------------------


def nested(depth: int, inner: bytes) -> tuple[str, bytes]:
    body = inner
    ctype = "text/plain; charset=utf-8"
    for level in reversed(range(depth)):
        boundary = f"level{level}"
        body = multipart(boundary, b"Content-Type: " + ctype.encode() + CRLF + CRLF + body)
        ctype = f'multipart/mixed; boundary="{boundary}"'
    return ctype, body


mime_mail("22_nested_50.eml", *nested(50, b"Deep inside the nest: " + crlf(EN_OK)), contains=["Deep inside the nest"])
mime_mail("23_nested_2000.eml", *nested(2000, b"Hidden at the bottom"), subject="Deep",
          text_is_subject=True, defects=["mime_too_deep"])
mime_mail("24_html_only.eml", "text/html; charset=utf-8", crlf(
    "<html><body><p>Dear support,</p><p>My card was charged <b>twice</b> for order&nbsp;1002.</p>"
    "<p>Please fix it.</p></body></html>"), contains=["charged twice for order 1002"], not_contains=["<b>", "<p>"],
    language="en")
mime_mail("25_html_script_style.eml", "text/html; charset=utf-8", crlf(
    "<html><head><style>p { color: red; } .x { display: block }</style>"
    "<script>var stolen = document.cookie; alert('gotcha');</script></head>"
    "<body><p>The invoice attached is wrong, please send a corrected one.</p>"
    "<script>window.location='http://evil.example'</script><!-- a comment nobody sees --></body></html>"),
    contains=["invoice attached is wrong"], not_contains=["document.cookie", "color: red", "evil.example",
                                                          "comment nobody sees"])
mime_mail("26_html_meta_charset.eml", "text/html", crlf(
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256"></head>'
    "<body><p>" + AR_OK + "</p></body></html>", "cp1256"), language="ar", contains=["وصل الطرد اليوم"])
mime_mail("27_zero_byte_attachment.eml", "multipart/mixed; boundary=zz", multipart(
    "zz", part("text/plain; charset=utf-8", crlf(EN_OK)),
    part("application/octet-stream; name=empty.bin", b"", "base64", 'attachment; filename="empty.bin"')),
    contains=["parcel arrived today"])
mime_mail("28_attachment_only.eml", "multipart/mixed; boundary=aa", multipart(
    "aa", part("application/pdf; name=threat.pdf", b64(b"%PDF-1.4 I will find you"), "base64",
               "attachment; filename=threat.pdf")),
    subject="See attached", text_is_subject=True, defects=["no_text_body"])
mime_mail("29_attached_text_file.eml", "multipart/mixed; boundary=tf", multipart(
    "tf", part("text/plain; charset=utf-8", crlf(EN_OK)),
    part("text/plain; charset=utf-8; name=old.txt", crlf(EN_THREAT), None, "attachment; filename=old.txt")),
    contains=["parcel arrived today"], not_contains=["take you to court"])
mime_mail("30_forwarded_rfc822.eml", "multipart/mixed; boundary=fw", multipart(
    "fw", part("text/plain; charset=utf-8", crlf("See the mail below, it came to our shared inbox.")),
    part("message/rfc822", head(("From", "bad@example.net"), ("Subject", "Last warning"), message_id=None)
         + CRLF + crlf(EN_THREAT), None, "inline")),
    contains=["See the mail below"], not_contains=["take you to court"])
mime_mail("31_calendar_invite.eml", "multipart/mixed; boundary=cal1", multipart(
    "cal1",
    b"Content-Type: multipart/alternative; boundary=cal2" + CRLF + CRLF + multipart(
        "cal2",
        part("text/plain; charset=utf-8", crlf("You are invited: Quarterly review of the refund backlog.")),
        part("text/html; charset=utf-8", crlf("<p>You are invited: <b>Quarterly review</b></p>")),
        part("text/calendar; charset=utf-8; method=REQUEST",
             crlf("BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nSUMMARY:Quarterly review\nEND:VEVENT\n"
                  "END:VCALENDAR"))),
    part("application/ics; name=invite.ics", b64(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"), "base64",
         "attachment; filename=invite.ics")),
    subject="Invitation: Quarterly review", contains=["You are invited: Quarterly review"],
    not_contains=["BEGIN:VCALENDAR"])
mime_mail("32_bounce_report.eml", 'multipart/report; report-type=delivery-status; boundary="rep"', multipart(
    "rep",
    part("text/plain; charset=us-ascii", crlf("Delivery to the following recipient failed permanently:\n\n"
                                               "    nobody@shop.example")),
    part("message/delivery-status", crlf("Reporting-MTA: dns; mx.example\n\n"
                                         "Final-Recipient: rfc822; nobody@shop.example\n"
                                         "Action: failed\nStatus: 5.1.1")),
    part("message/rfc822", head(("From", "support@shop.example"), ("Subject", "Re: refund"), message_id=None)
         + CRLF + crlf(EN_THREAT))),
    subject="Delivery Status Notification (Failure)", contains=["failed permanently"],
    not_contains=["take you to court", "Reporting-MTA"])
mime_mail("33_multipart_without_boundary.eml", "multipart/mixed", crlf(EN_OK + "\n"),
          contains=["parcel arrived today"], defects=["no_boundary_in_multipart"])
add("34_empty_body.eml", head(("From", "a@example.com"), ("Subject", "Nothing inside"), name="34"),
    subject="Nothing inside", text_is_subject=True, defects=["no_text_body"])
add("35_headers_no_separator.eml", b"From: a@example.com\r\nSubject: Cut after the headers\r\nTo: b@example.com",
    subject="Cut after the headers", sender="a@example.com", text_is_subject=True)

# --- headers -----------------------------------------------------------------

simple("36_no_message_id.eml", crlf(EN_OK), message_id=None, key_prefix="sha256:", defects=["no_message_id"])
add("37_no_from.eml", head(("To", "support@shop.example"), ("Subject", "Who am I"), name="37") + CRLF + crlf(EN_OK),
    sender="", sender_name="", defects=["no_from"], contains=["parcel arrived"])
add("38_no_subject.eml", head(("From", "x@example.com"), name="38") + CRLF + crlf(EN_OK), subject="",
    contains=["Thank you so much"])
add("39_garbage_headers.eml",
    b"From: Good Sender <good@example.com>\r\nX-Junk: \x01\x02\xff\xfe\x80 binary\r\nSubject: Garbage around me\r\n"
    b"X-Empty:\r\n\tcontinued: with a colon\r\nThis line has no colon\r\nTo: nobody\r\n\r\nThe real body text.\r\n",
    subject="Garbage around me", sender="good@example.com", body_contains=["The real body text."],
    defects=["missing_header_body_separator"])
add("40_null_bytes.eml",
    b"From: nul@example.com\r\nSubject: Null\x00 bytes here\r\nMessage-ID: <nul@example.com>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello\x00 world, please\x00 help with my order.\r\n",
    subject="Null bytes here", contains=["Hello world, please help"], defects=["null_bytes"])
add("41_duplicate_headers.eml",
    b"From: First <first@example.com>\r\nFrom: Second <second@example.com>\r\nSubject: First subject\r\n"
    b"Subject: Second subject\r\nMessage-ID: <first@example.com>\r\nMessage-ID: <second@example.com>\r\n"
    b"Content-Type: text/plain\r\n\r\nbody\r\n",
    subject="First subject", sender="first@example.com", message_id="<first@example.com>",
    defects=["duplicate_from", "duplicate_subject", "duplicate_message_id"])
add("42_8bit_headers_utf8.eml",
    head(("From", "Jos\u00e9 M\u00fcller <jose@example.com>".encode()),
         ("Subject", ("Réclamation — " + "שלום").encode()),
         ("Content-Type", "text/plain; charset=utf-8"), name="42") + CRLF + crlf(FR_OK),
    subject="Réclamation — שלום", sender_name="José Müller", sender="jose@example.com", defects=["header_8bit"])
add("43_8bit_headers_cp1256.eml",
    head(("From", "customer@example.com"), ("Subject", "شكوى بخصوص الطلب".encode("cp1256")),
         ("Content-Type", "text/plain; charset=windows-1256"), ("Content-Transfer-Encoding", "8bit"), name="43")
    + CRLF + crlf(AR_OK, "cp1256"),
    subject="شكوى بخصوص الطلب", language="ar", defects=["header_8bit"])
_ar_subject = base64.b64encode("تهديد".encode("cp1256")).decode()
_ru_subject = quopri.encodestring("срочно".encode("koi8-r"), header=True).decode()
_he_name = base64.b64encode("דוד כהן".encode("iso-8859-8")).decode()
add("44_rfc2047_many_charsets.eml",
    head(("From", f"=?iso-8859-8-i?B?{_he_name}?= <DAVID@Example.ORG>"),
         ("Subject", f"=?windows-1256?B?{_ar_subject}?= =?koi8-r?Q?{_ru_subject}?=\r\n =?utf-8?q?caf=C3=A9?= plain"),
         ("To", "=?x-unknown?B?SGVsbG8=?= <s@shop.example>"), ("Content-Type", "text/plain"), name="44")
    + CRLF + b"Hello" + CRLF,
    subject="تهديدсрочноcafé plain", sender="david@example.org", sender_name="דוד כהן")
add("45_long_subject.eml", head(("From", "a@example.com"), ("Subject", "A" * 10000), name="45") + CRLF + b"x" + CRLF,
    defects=["header_too_long"])
add("46_message_id_garbage.eml",
    b"From: a@example.com\r\nMessage-ID: 1\r\nSubject: Weird id\r\n\r\nbody\r\n",
    message_id="1", key_prefix="sha256:", defects=["message_id_invalid"])
add("47_reply_headers_folded.eml",
    b"From: a@example.com\r\nMessage-ID: <r3@example.com>\r\nIn-Reply-To: junk <r2@example.com> more junk\r\n"
    b"References: <r0@example.com>\r\n <r1@example.com> (comment)\r\n\t<r2@example.com> <r1@example.com>\r\n"
    b"Subject: Re: refund\r\nDate: yesterday at noon\r\n\r\nok\r\n",
    in_reply_to="<r2@example.com>", references=["<r0@example.com>", "<r1@example.com>", "<r2@example.com>"],
    date=None, defects=["date_invalid"])
add("48_cr_line_endings.eml",
    b"From: Old Mac <mac@example.com>\rSubject: CR only\rMessage-ID: <cr@example.com>\r\r"
    b"Line one of the body\rLine two\r",
    subject="CR only", sender="mac@example.com", contains=["Line one of the body"])
add("49_leading_blank_lines.eml", b"\r\n\r\nFrom: lead@example.com\r\nSubject: Leading blank lines\r\n\r\nbody\r\n",
    subject="Leading blank lines", sender="lead@example.com")
add("50_from_unparsable.eml", b"From: <<<@@@>>> ,,, ;;;\r\nSubject: Broken from\r\n\r\nbody\r\n",
    sender="", defects=["from_unparsable"])

# --- whole-file encodings ----------------------------------------------------

simple("51_utf16_part.eml", b64((HE_OK + "\n" + EN_OK).encode("utf-16")), cte="base64",
       ctype="text/plain; charset=utf-16", contains=["החבילה הגיעה היום", "parcel arrived"])
add("52_utf16_whole_file.eml",
    ("From: Wide <wide@example.com>\r\nSubject: Saved by Notepad\r\nMessage-ID: <wide@example.com>\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n\r\n" + EN_OK + "\r\n").encode("utf-16"),
    subject="Saved by Notepad", sender="wide@example.com", contains=["parcel arrived today"], defects=["raw_utf16"])

# --- quotes, signatures, RTL -------------------------------------------------

_bidi_ar_header = (f"{RLM}في {RLM}1{RLM}/1{RLM}/2024 {RLM}10:00 ص، كتب {LRM}John Doe{LRM} "
                   f"{LRM}<john@example.com>{LRM}:")
simple("53_rtl_arabic_bidi_quote.eml",
       crlf(f"{RLE}{AR_OK}{PDF}\n\n{_bidi_ar_header}\n{RLI}{AR_THREAT}{PDI}\n"),
       language="ar", contains=["وصل الطرد اليوم"], not_contains=["دعوى قضائية"], body_contains=["دعوى قضائية"])
simple("54_rtl_hebrew_bidi_quote.eml",
       crlf(f"{RLM}{HE_OK}\n\n{RLM}ב-1.1.2024 10:00, {LRM}John Doe{LRM} כתב:\n> {RLM}{HE_THREAT}\n>\n"),
       ctype="text/plain; charset=utf-8", language="he", contains=["החבילה הגיעה היום"], not_contains=["תביעה"])
simple("55_only_quoted.eml",
       crlf(f"On Mon, Jan 1, 2024 at 9:00 AM Angry Person <angry@example.net> wrote:\n> {EN_THREAT}\n> Last chance.\n"),
       subject="Re: your order", text_is_subject=True, body_contains=["take you to court"],
       not_contains=["take you to court"])
_typical_plain = crlf(
    f"Hi team,\n\n{EN_OK} I also wanted to ask whether the warranty covers the charger, since it gets quite warm "
    "when the tablet is charging overnight. If it does, could you tell me how to register it?\n\nBest,\nAnna\n\n"
    f"On Mon, Jan 1, 2024 at 9:00 AM Shop Support <support@shop.example> wrote:\n\n"
    "> Hello Anna,\n>\n> your parcel has been shipped and should arrive within two days.\n"
    "> You can track it with the number below.\n>\n> Kind regards,\n> Shop Support\n>\n"
    f"> On Sun, Dec 31, 2023 at 8:00 PM Anna <anna@example.com> wrote:\n>> {EN_THREAT}\n")
_typical_html = crlf(
    f"<div dir=\"ltr\"><p>Hi team,</p><p>{EN_OK}</p><p>Best,<br>Anna</p></div><br><div class=\"gmail_quote\">"
    "<div dir=\"ltr\" class=\"gmail_attr\">On Mon, Jan 1, 2024 at 9:00 AM Shop Support &lt;<a href=\"mailto:"
    "support@shop.example\">support@shop.example</a>&gt; wrote:<br></div><blockquote class=\"gmail_quote\">"
    f"Hello Anna, your parcel has been shipped.<br>{EN_THREAT}</blockquote></div>")
add(
    "56_gmail_reply_en_typical.eml",
    head(("From", "Anna Example <anna@example.com>"), ("To", "Shop Support <support@shop.example>"),
         ("Subject", "Re: Order 1003"), ("Date", "Mon, 1 Jan 2024 11:12:13 +0000"),
         ("In-Reply-To", "<s1@shop.example>"), ("References", "<a0@example.com> <s1@shop.example>"),
         ("MIME-Version", "1.0"), ("Content-Type", 'multipart/alternative; boundary="000000000000abc"'),
         name="56")
    + CRLF + multipart("000000000000abc", part("text/plain; charset=\"UTF-8\"", qp(_typical_plain), "quoted-printable"),
                       part("text/html; charset=\"UTF-8\"", qp(_typical_html), "quoted-printable")),
    subject="Re: Order 1003", sender="anna@example.com", sender_name="Anna Example", language="en",
    in_reply_to="<s1@shop.example>", references=["<a0@example.com>", "<s1@shop.example>"],
    contains=["warranty covers the charger", "Re: Order 1003"],
    not_contains=["take you to court", "your parcel has been shipped", "wrote:"],
)
mime_mail("57_outlook_reply_fr_html.eml", "text/html; charset=iso-8859-1", crlf(
    f"<html><body><div><p>{FR_OK}</p><p>Cordialement,<br>Marie</p></div>"
    "<div style=\"border:none;border-top:solid #E1E1E1 1.0pt\"><p><b>De&nbsp;:</b> Service client "
    "&lt;support@shop.example&gt;<br><b>Envoy\u00e9&nbsp;:</b> lundi 1 janvier 2024 09:00<br>"
    "<b>\u00c0&nbsp;:</b> Marie &lt;marie@example.fr&gt;<br><b>Objet&nbsp;:</b> RE: commande</p></div>"
    f"<p>{FR_THREAT}</p></body></html>", "latin-1"),
    language="fr", contains=["colis est bien arrivé"], not_contains=["porterai plainte", "Objet"])
simple("58_german_reply_unquoted.eml",
       crlf(f"{DE_OK}\n\nAm Mo., 1. Jan. 2024 um 10:00 Uhr schrieb Max Muster <max@example.de>:\n\n{DE_THREAT}\n"),
       language="de", contains=["Paket ist heute angekommen"], not_contains=["Anwalt"])
simple("59_spanish_reply_latin1.eml",
       crlf(f"{ES_OK}\n\nEl lun, 1 ene 2024 a las 10:00, Juan Pérez (<juan@example.es>) escribió:\n> {ES_THREAT}\n",
            "latin-1"), ctype="text/plain; charset=ISO-8859-1",
       language="es", contains=["paquete llegó hoy"], not_contains=["denuncia"])
simple("60_russian_outlook_block.eml",
       crlf(f"{RU_OK}\n\nОт: Иван Петров <ivan@example.ru>\nОтправлено: 1 января 2024 г. 10:00\n"
            f"Кому: support@shop.example\nТема: Возврат\n\n{RU_THREAT}\n", "koi8-r"),
       ctype="text/plain; charset=koi8-r", language="ru", contains=["Посылка пришла"], not_contains=["обращусь в суд"])
simple("61_turkish_gmail_reply.eml",
       crlf(f"{TR_OK}\n\n1 Oca 2024 Pzt, 10:00 tarihinde Ahmet Yılmaz <ahmet@example.com.tr> şunu yazdı:\n\n"
            f"> {TR_THREAT}\n"),
       language="tr", contains=["Paket bugün geldi"], not_contains=["mahkemeye"])
simple("62_bottom_posted_reply.eml",
       crlf("On Mon, Jan 1, 2024 at 9:00 AM Shop Support <support@shop.example> wrote:\n"
            "> We cannot refund opened items.\n>\n> Regards\n\n" + EN_THREAT + "\n"),
       contains=["take you to court"], not_contains=["cannot refund opened items", "wrote:"])
simple("63_signature_and_mobile.eml",
       crlf("Hi,\n\nwhere is my order #123? It is two weeks late now.\n\nSent from my iPhone\n\n"
            "-- \nJane Doe\nACME Ltd, Unit 4\n"),
       contains=["where is my order #123?"], not_contains=["Sent from my iPhone", "ACME Ltd"])
mime_mail("64_outlook_reply_he_html.eml", "text/html; charset=windows-1255", crlf(
    f"<html><body dir=\"rtl\"><p>{HE_OK}</p><hr><p><b>מאת:</b> שירות לקוחות &lt;support@shop.example&gt;<br>"
    f"<b>נשלח:</b> יום שני 1 ינואר 2024 10:00<br><b>אל:</b> דוד<br><b>נושא:</b> החזר</p>"
    f"<p>{HE_THREAT}</p></body></html>", "cp1255"),
    language="he", contains=["החבילה הגיעה היום"], not_contains=["תביעה משפטית"])
simple("65_arabic_outlook_block_base64.eml", b64(
    (f"{AR_OK}\n\n________________________________\nمن: خدمة العملاء <support@shop.example>\n"
     f"تاريخ الإرسال: الاثنين، 1 يناير 2024 10:00 ص\nإلى: أحمد\nالموضوع: استرداد\n\n{AR_THREAT}\n").encode()),
    cte="base64", language="ar", contains=["وصل الطرد اليوم"], not_contains=["دعوى قضائية", "____"])
simple("66_very_long_lines.eml",
       crlf("On " + "and on " * 60000 + "\n" + "x" * 300000 + "\nShort line at the end.\n"),
       contains=["and on and on"], truncated=True)
simple("67_memo_style_legal_letter.eml",
       crlf("From: Smith & Partners LLP\nTo: Shop Ltd\nDate: 1 March 2024\nRe: Letter before action\n\n"
            "Unless the outstanding amount is paid within 14 days, our client will issue court proceedings "
            "without further notice.\n"),
       contains=["issue court proceedings", "Letter before action"])



def nested_alternative(depth: int, inner: bytes) -> tuple[str, bytes]:
    # A walker that tries each alternative twice (plain first, then HTML)
    # takes 2**depth steps on this.
    body, ctype = inner, "text/html; charset=utf-8"
    for level in reversed(range(depth)):
        boundary = f"alt{level}"
        body = multipart(boundary, b"Content-Type: image/png" + CRLF + CRLF + b"PNG",
                         b"Content-Type: " + ctype.encode() + CRLF + CRLF + body)
        ctype = f"multipart/alternative; boundary={boundary}"
    return ctype, body


mime_mail("68_nested_alternative_40.eml", *nested_alternative(40, b"<p>Bottom of the alternatives</p>"),
          contains=["Bottom of the alternatives"])

add("69_utf8_bom_file.eml",
    b"\xef\xbb\xbfFrom: Bom <bom@example.com>\r\nSubject: Saved with a BOM\r\n\r\n" + crlf(EN_OK),
    sender="bom@example.com", subject="Saved with a BOM", contains=["parcel arrived"])


def main() -> None:
    expected: dict[str, dict[str, Any]] = {}
    for old in HERE.glob("*.eml"):
        old.unlink()
    for name, (raw, facts) in sorted(CORPUS.items()):
        (HERE / name).write_bytes(raw)
        expected[name] = facts
    (HERE / "EXPECTED.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(CORPUS)} mails to {HERE}")


if __name__ == "__main__":
    main()
