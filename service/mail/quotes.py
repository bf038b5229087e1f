"""Removing quoted older messages and signatures from a mail body.

A friendly reply that quotes last week's threat must not be flagged, so the
classifier reads only the new part of a mail. The body is scanned line by
line; each line is kept, dropped (a ``>`` quote, a "Sent from my iPhone"
line), or ends the new part (a quote header, a forwarded-message marker, the
``-- `` signature delimiter). A quote header that is followed by ``>`` lines is
only dropped, not cut at, so that bottom-posted and inline replies keep the
text written under the quote.

What comes from mail-parser-reply, and why not more: its ``EmailReplyParser``
was checked against the languages this product sees. Its "wrote" patterns for
English, German, French and Italian are right and are reused from
``mailparser_reply.constants``. The parser itself is not used, because:

* it has no Arabic, Hebrew, Russian, Turkish or Portuguese patterns, its
  Spanish pattern needs two spaces before "escribió", and its Dutch and Polish
  ones miss Gmail's form ("schreef Name <addr>:", "napisał(a):");
* its Outlook patterns accept any two lines among From/To/Date/Subject, so a
  legal letter that opens "From: ... / To: ... / Date: ..." would be cut away
  whole, and its Polish one accepts a single "Data:" line;
* its signature and disclaimer rules cut from "Thanks,", "Warning:" or a
  "- item" line to the end of the mail, deleting exactly the threats this
  product must see;
* its English and Italian patterns backtrack quadratically on a long line
  that starts with "On"/"Il" (half a second for 4,000 characters), so they run
  here only on short lines that already end in "wrote:"/"ha scritto:".

A header must also carry a time, a numeric date or an e-mail address before
the text under it is cut, because "On 1 March your agent wrote:" followed by
the customer's own words is not a quote.
"""

from __future__ import annotations

import re
from typing import Final

from mailparser_reply.constants import MAIL_LANGUAGES  # type: ignore[import-untyped]

# Invisible direction and width marks that RTL clients wrap around names and
# dates in quote headers; they carry no meaning for the classifier either.
# ZWNJ (U+200C) is spelling in Persian and is kept.
_TRANSLATE: Final = {
    **dict.fromkeys(map(ord, "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c\ufeff")),
    **dict.fromkeys(map(ord, "\u00a0\u2007\u202f"), " "),
}
_BLANK_RUN = re.compile(r"\n{3,}")

# A header line is never this long; longer lines skip every header check.
_MAX_HEADER_LINE: Final = 300

_LIBRARY_FLAGS: Final = re.IGNORECASE | re.MULTILINE
# language -> (how the window must end before the pattern runs, pattern)
_LIBRARY_ATTRIBUTIONS: Final = tuple(
    (re.compile(end, re.IGNORECASE | re.DOTALL), re.compile(MAIL_LANGUAGES[lang]["wrote_header"], _LIBRARY_FLAGS))
    for lang, end in (
        ("en", r"wrote:$"),
        ("de", r"schrieb\b.*:$"),
        ("fr", r"a écrit.*:$"),
        ("it", r"ha scritto:$"),
    )
)

# Quote headers in the languages the library lacks, verb anywhere in the
# header, name and address after it: "El ... escribió:", "Em ... escreveu:",
# "Op ... schreef Name <addr>:", "... napisał(a):", "... пишет:",
# "... şunu yazdı:", "في ... كتب Name:", "كتب Name في ...:", "ב-... כתב/ה:".
_ATTRIBUTION_VERBS: Final = re.compile(
    r".{0,300}?(?<!\w)(?:escribió|escreveu|schreef|geschreven|napisał\(a\)|napisała|napisał|pisze"
    r"|написал\(а\)|написала|написал|пишет|yazdı|كتبت|كتب|כתב/ה|כתב\(ה\)|כתבה|כתב)"
    r"(?!\w).{0,150}:$",
    re.IGNORECASE | re.DOTALL,
)
# Gmail in every language ends its header with the address: "... <addr>:".
_ATTRIBUTION_ADDRESS: Final = re.compile(r".{0,300}<[^<>\s@]{1,100}@[^<>\s]{1,200}>\s?:$", re.DOTALL)
# A real client header carries a time, a numeric date or an address.
_EVIDENCE: Final = re.compile(r"\d{1,2}:\d{2}|@|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")

# Outlook/Gmail forwarded-header blocks: a "From:" line and at least two more
# header fields right under it, in the languages of the product's mail.
_FROM_FIELD: Final = re.compile(r"\*?(?:from|de|von|van|da|od|от|kimden|gönderen|מאת|من)\s?\*?\s?:", re.IGNORECASE)
_OTHER_FIELD: Final = re.compile(
    r"\*?(?:sent|date|to|cc|subject|envoyé|à|objet|gesendet|datum|an|betreff|enviado(?: el)?|fecha|para|asunto"
    r"|assunto|data|inviato|a|oggetto|verzonden|aan|onderwerp|wysłano|wysłane|do|temat|dw|отправлено|дата|кому"
    r"|тема|копия|gönderildi|gönderilme tarihi|tarih|kime|konu|bilgi|נשלח|תאריך|אל|נושא|עותק"
    r"|تاريخ الإرسال|تاريخ الارسال|أرسل|أرسلت|ارسل|التاريخ|إلى|الى|الموضوع|نسخة)\s?\*?\s?:",
    re.IGNORECASE,
)
_TIME: Final = re.compile(r"\d{1,2}:\d{2}")
_BLOCK_LINES: Final = 6

# "-----Original Message-----", "---------- Forwarded message ---------" and
# their translations; the title must name an original or forwarded message,
# so that "----- IMPORTANT -----" in a letter is not a cut.
_SEPARATOR: Final = re.compile(r"[-_=]{3,}\s*(?P<title>.{3,80}?)\s*[-_=]{3,}")
_SEPARATOR_TITLE: Final = re.compile(
    r"original|forward|transf|weitergeleit|urspr|reenv|inoltr|encaminh|doorgestuurd|oorspronk|przekazan"
    r"|oryginal|пересла|пересыл|исходн|переадрес|yönlendir|orijinal|iletil|הועבר|מקורי|توجيه|الأصلية|الاصلية"
    r"|origine",
    re.IGNORECASE,
)
# Apple Mail's forwarded marker.
_FORWARD_INTRO: Final = re.compile(
    r"(?:begin forwarded message|début du message réexpédié|anfang der weitergeleiteten nachricht"
    r"|inicio del mensaje reenviado|inizio messaggio inoltrato|begin doorgestuurd bericht"
    r"|início da mensagem reencaminhada|начало переадресованного сообщения|iletilen ileti başlangıcı"
    r"|początek przekazywanej wiadomości|תחילת הודעה שהועברה|بداية الرسالة المعاد توجيهها)\s?:",
    re.IGNORECASE,
)

# "Sent from my iPhone" lines: a sender prefix, a device or mail app, and
# nothing that reads like a sentence ("Sent from my iPhone. I will find you."
# stays). Only the line goes; the library's ``sent_from`` rule would cut from
# it to the end of the mail, and covers neither RTL languages nor Russian.
_SENT_FROM: Final = re.compile(
    r"(?:sent from|sent with|sent via|get outlook for|envoyé de|envoyé depuis|envoyé avec|von meinem|gesendet von"
    r"|gesendet mit|enviado desde|enviado do|enviado de|inviato da|verzonden (?:met|vanaf|van)|verstuurd (?:met|vanaf)"
    r"|отправлено с|отправлено из|wysłane z|wysłano z|נשלח מ|أرسلت من|أُرسلت من|تم الإرسال من|مرسل من|\S+ gönderildi)"
    r"[^.!?;:\n<]{0,60}(?:<[^<>\s]{1,200}>)?",
    re.IGNORECASE,
)
_DEVICE: Final = re.compile(
    r"iphone|ipad|android|samsung|galaxy|huawei|xiaomi|pixel|blackberry|mobile|phone|handy|móvil|movil|celular"
    r"|cellulare|telefon|телефон|smartphone|outlook|mail|yahoo|proton|windows|ios|tablet|הנייד|טלפון|جوال|هاتف"
    r"|الجوال|الهاتف|الآيفون",
    re.IGNORECASE,
)
_MAX_SENT_FROM_LINE: Final = 80
_RULE_LINE: Final = re.compile(r"[-_=*~]{5,}")


def strip_quotes(text: str) -> str:
    """Return ``text`` without quoted older messages, quote headers and signatures.

    When that leaves nothing, the text before the first quote marker is
    returned instead (a bare signature, a "Sent from my iPhone"), and "" when
    the mail starts with the quote.
    """
    lines = [line.strip() for line in _normalise(text).split("\n")]
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(">") or _is_sent_from(line):
            i += 1
            continue
        if line == "--":
            break
        header_end = _quote_header_end(lines, i)
        if header_end is not None:
            if not _next_is_quoted(lines, header_end):
                break
            i = header_end
            continue
        kept.append(line)
        i += 1
    while kept and (not kept[-1] or _RULE_LINE.fullmatch(kept[-1])):
        kept.pop()
    result = _join(kept)
    if result:
        return result
    return _join(lines[: _first_quote(lines)])


def _join(lines: list[str]) -> str:
    return _BLANK_RUN.sub("\n\n", "\n".join(lines)).strip()


def _first_quote(lines: list[str]) -> int:
    for i, line in enumerate(lines):
        if line.startswith(">") or _quote_header_end(lines, i) is not None:
            return i
    return len(lines)


def _normalise(text: str) -> str:
    return text.translate(_TRANSLATE).replace("\r\n", "\n").replace("\r", "\n")


def _is_sent_from(line: str) -> bool:
    return (
        0 < len(line) <= _MAX_SENT_FROM_LINE
        and _SENT_FROM.fullmatch(line.rstrip(".")) is not None
        and _DEVICE.search(line) is not None
    )


def _quote_header_end(lines: list[str], i: int) -> int | None:
    """If a quote header starts at line ``i``, the index of the line after it."""
    line = lines[i]
    if not line or len(line) > _MAX_HEADER_LINE:
        return None
    if line[0] in "-_=" and (m := _SEPARATOR.fullmatch(line)) and _SEPARATOR_TITLE.search(m.group("title")):
        return i + 1
    if line.endswith(":"):
        if _FORWARD_INTRO.fullmatch(line) or _is_attribution(line):
            return i + 1
    elif (
        # Gmail wraps a long header: "On ..., John Doe <\njohn@example.com> wrote:".
        i + 1 < len(lines)
        and lines[i + 1].endswith(":")
        and len(lines[i + 1]) <= _MAX_HEADER_LINE
        and _is_attribution(line + "\n" + lines[i + 1])
    ):
        return i + 2
    if _FROM_FIELD.match(line):
        return _field_block_end(lines, i)
    return None


def _is_attribution(window: str) -> bool:
    if _EVIDENCE.search(window) is None:
        return False
    for end, pattern in _LIBRARY_ATTRIBUTIONS:
        if end.search(window) and pattern.match(window):
            return True
    return bool(_ATTRIBUTION_VERBS.match(window) or _ATTRIBUTION_ADDRESS.match(window))


def _field_block_end(lines: list[str], i: int) -> int | None:
    """End of a "From: / Sent: / To: / Subject:" block starting at ``i``, if it is one."""
    j = i + 1
    fields = 0
    has_time = _TIME.search(lines[i]) is not None
    while j < len(lines) and fields < _BLOCK_LINES:
        line = lines[j]
        if line and (len(line) > _MAX_HEADER_LINE or not _OTHER_FIELD.match(line)):
            break
        if line:
            fields += 1
            has_time = has_time or _TIME.search(line) is not None
        j += 1
    # A time rules out a letter's own "From: / To: / Date: 1 March" heading.
    if fields >= 2 and has_time:
        return j
    return None


def _next_is_quoted(lines: list[str], j: int) -> bool:
    while j < len(lines) and not lines[j]:
        j += 1
    return j < len(lines) and lines[j].startswith(">")
