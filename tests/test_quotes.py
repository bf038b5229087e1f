"""strip_quotes: a friendly reply above (or below) a quoted threat keeps the reply and drops the threat."""

from __future__ import annotations

import pytest

from service.mail.quotes import strip_quotes

RLM, LRM = "\u200f", "\u200e"

# language -> (friendly reply, older threat)
TEXTS = {
    "en": ("Thanks a lot, the parcel arrived today.", "Refund me by Friday or I will sue your company."),
    "ar": ("شكرا جزيلا، وصل الطرد اليوم.", "إذا لم تعيدوا أموالي فسأرفع دعوى قضائية ضدكم."),
    "he": ("תודה רבה, החבילה הגיעה היום.", "אם לא תחזירו את הכסף אגיש נגדכם תביעה."),
    "fr": ("Merci beaucoup, le colis est arrivé.", "Si vous ne me remboursez pas, je porterai plainte."),
    "de": ("Vielen Dank, das Paket ist angekommen.", "Zahlen Sie bis Freitag oder ich schalte meinen Anwalt ein."),
    "es": ("Muchas gracias, el paquete llegó hoy.", "Si no me devuelven el dinero presentaré una denuncia."),
    "it": ("Grazie mille, il pacco è arrivato.", "Se non mi rimborsate vi denuncio."),
    "pt": ("Muito obrigado, a encomenda chegou hoje.", "Se não devolverem o dinheiro vou processar a empresa."),
    "nl": ("Hartelijk dank, het pakket is aangekomen.", "Als u niet terugbetaalt stap ik naar de rechter."),
    "ru": ("Большое спасибо, посылка пришла сегодня.", "Если не вернёте деньги, я подам в суд."),
    "pl": ("Dziękuję bardzo, paczka dotarła dzisiaj.", "Jeśli nie oddacie pieniędzy, pozwę waszą firmę."),
    "tr": ("Çok teşekkürler, paket bugün geldi.", "Paramı iade etmezseniz sizi mahkemeye vereceğim."),
}

# Quote headers as the common clients write them (Gmail, Apple Mail, Thunderbird, Outlook mobile).
ATTRIBUTIONS = [
    ("en", "On Mon, Jan 1, 2024 at 10:00 AM John Doe <john@example.com> wrote:"),
    ("en", "On 1/1/24 10:00, John Doe wrote:"),
    ("en", "On Mon, Jan 1, 2024 at 10:00 AM John Doe <\njohn@example.com> wrote:"),
    ("ar", "في الاثنين، 1 يناير 2024 في 10:00 ص تمت كتابة ما يلي بواسطة John Doe <john@example.com>:"),
    ("ar", f"{RLM}في {RLM}1{RLM}/1{RLM}/2024، الساعة {RLM}10:00 ص، كتب {LRM}John Doe{LRM} <john@example.com>:"),
    ("ar", "كتب John Doe <john@example.com> في 1 يناير 2024 10:00:"),
    ("he", "בתאריך יום ב׳, 1 בינו׳ 2024 ב-10:00 מאת John Doe <john@example.com>:"),
    ("he", f"ב-1 בינו׳ 2024, בשעה 10:00, {RLM}John Doe{RLM} <john@example.com> כתב/ה:"),
    ("he", "ב-01/01/2024 10:00, John Doe כתב:"),
    ("he", "ב-01/01/2024 10:00, Dana כתבה:"),
    ("fr", "Le lun. 1 janv. 2024 à 10:00, John Doe <john@example.com> a écrit :"),
    ("fr", "Le 01/01/2024 à 10:00, John Doe a écrit\u00a0:"),
    ("de", "Am Mo., 1. Jan. 2024 um 10:00 Uhr schrieb John Doe <john@example.com>:"),
    ("de", "Am 01.01.24 um 10:00 schrieb John Doe:"),
    ("es", "El lun, 1 ene 2024 a las 10:00, John Doe (<john@example.com>) escribió:"),
    ("es", "El 01/01/2024 a las 10:00, John Doe escribió:"),
    ("it", "Il giorno lun 1 gen 2024 alle ore 10:00 John Doe <john@example.com> ha scritto:"),
    ("pt", "Em seg., 1 de jan. de 2024 às 10:00, John Doe <john@example.com> escreveu:"),
    ("nl", "Op ma 1 jan. 2024 om 10:00 schreef John Doe <john@example.com>:"),
    ("nl", "Op 1 jan. 2024, om 10:00 heeft John Doe <john@example.com> het volgende geschreven:"),
    ("ru", "пн, 1 янв. 2024 г. в 10:00, John Doe <john@example.com>:"),
    ("ru", "1 янв. 2024 г., в 10:00, John Doe <john@example.com> написал(а):"),
    ("ru", "01.01.2024 10:00, John Doe пишет:"),
    ("pl", "pon., 1 sty 2024 o 10:00 John Doe <john@example.com> napisał(a):"),
    ("pl", "W dniu 1.01.2024 o 10:00, John Doe pisze:"),
    ("tr", "1 Oca 2024 Pzt, 10:00 tarihinde John Doe <john@example.com> şunu yazdı:"),
]

OUTLOOK_BLOCKS = [
    ("en", "From: John Doe <john@example.com>\nSent: Monday, January 1, 2024 10:00 AM\nTo: Support\nSubject: RE"),
    ("en", "-----Original Message-----\nFrom: John Doe\nSent: Monday, January 1, 2024 10:00 AM\nTo: Support"),
    ("fr", "De : John Doe <john@example.com>\nEnvoyé : lundi 1 janvier 2024 10:00\nÀ : Support\nObjet : RE: commande"),
    ("fr", "De: John Doe\nEnvoyé: lundi 1 janvier 2024 10:00\nÀ: Support\nObjet: RE: commande"),
    ("fr", "-----Message d'origine-----\nDe : John Doe\nEnvoyé : lundi 1 janvier 2024 10:00"),
    ("de", "Von: John Doe <john@example.com>\nGesendet: Montag, 1. Januar 2024 10:00\nAn: Support\nBetreff: AW"),
    ("de", "-----Ursprüngliche Nachricht-----\nVon: John Doe\nGesendet: Montag, 1. Januar 2024 10:00"),
    ("es", "De: John Doe <john@example.com>\nEnviado el: lunes, 1 de enero de 2024 10:00\nPara: Soporte\nAsunto: RE"),
    ("es", "-----Mensaje original-----\nDe: John Doe\nEnviado: lunes, 1 de enero de 2024 10:00"),
    ("it", "Da: John Doe <john@example.com>\nInviato: lunedì 1 gennaio 2024 10:00\nA: Supporto\nOggetto: R: ordine"),
    ("pt", "De: John Doe <john@example.com>\nEnviado: segunda-feira, 1 de janeiro de 2024 10:00\nPara: Suporte"),
    ("nl", "Van: John Doe <john@example.com>\nVerzonden: maandag 1 januari 2024 10:00\nAan: Support\nOnderwerp: RE"),
    ("ru", "От: John Doe <john@example.com>\nОтправлено: 1 января 2024 г. 10:00\nКому: Поддержка\nТема: RE: заказ"),
    ("pl", "Od: John Doe <john@example.com>\nWysłano: poniedziałek, 1 stycznia 2024 10:00\nDo: Pomoc\nTemat: RE"),
    ("tr", "Kimden: John Doe <john@example.com>\nGönderildi: 1 Ocak 2024 Pazartesi 10:00\nKime: Destek\nKonu: RE"),
    ("he", "מאת: John Doe <john@example.com>\nנשלח: יום שני 1 ינואר 2024 10:00\nאל: תמיכה\nנושא: RE: הזמנה"),
    ("ar", "من: John Doe <john@example.com>\nتاريخ الإرسال: الاثنين، 1 يناير 2024 10:00 ص\nإلى: الدعم\nالموضوع: RE"),
    ("ar", "من: John Doe <john@example.com>\nأرسلت: الاثنين، 1 يناير 2024 10:00 ص\nإلى: الدعم"),
    ("en", "________________________________\nFrom: John Doe <john@example.com>\nSent: Mon, 1 Jan 2024 10:00\nTo: S"),
]

FORWARD_MARKERS = [
    ("en", "---------- Forwarded message ---------\nFrom: John Doe <john@example.com>\nDate: Mon, Jan 1, 2024"),
    ("en", "Begin forwarded message:\n\nFrom: John Doe <john@example.com>\nSubject: order"),
    ("fr", "---------- Message transféré ---------\nDe : John Doe <john@example.com>"),
    ("de", "---------- Weitergeleitete Nachricht ---------\nVon: John Doe <john@example.com>"),
    ("es", "---------- Mensaje reenviado ---------\nDe: John Doe <john@example.com>"),
    ("ru", "-------- Пересылаемое сообщение --------\nОт: John Doe <john@example.com>"),
    ("he", "---------- הודעה שהועברה ---------\nמאת: John Doe <john@example.com>"),
    ("ar", "---------- الرسالة المعاد توجيهها ---------\nمن: John Doe <john@example.com>"),
    ("en", "-------- Original Message --------\nSubject: order\nDate: Mon, 1 Jan 2024 10:00:00 +0100"),
]


def _ids(cases: list[tuple[str, str]]) -> list[str]:
    return [f"{lang}-{i}" for i, (lang, _) in enumerate(cases)]


@pytest.mark.parametrize(("lang", "header"), ATTRIBUTIONS, ids=_ids(ATTRIBUTIONS))
@pytest.mark.parametrize("prefix", ["> ", ""], ids=["quoted", "unprefixed"])
def test_attribution_header_drops_the_quoted_threat(lang: str, header: str, prefix: str) -> None:
    reply, threat = TEXTS[lang]
    text = f"{reply}\n\n{header}\n\n{prefix}{threat}\n{prefix}\n{prefix}{threat}\n"
    assert strip_quotes(text) == reply


@pytest.mark.parametrize(("lang", "block"), OUTLOOK_BLOCKS, ids=_ids(OUTLOOK_BLOCKS))
def test_outlook_header_block_drops_the_older_message(lang: str, block: str) -> None:
    reply, threat = TEXTS[lang]
    assert strip_quotes(f"{reply}\n\n{block}\n\n{threat}\n") == reply


@pytest.mark.parametrize(("lang", "marker"), FORWARD_MARKERS, ids=_ids(FORWARD_MARKERS))
def test_forwarded_message_marker_drops_the_forwarded_mail(lang: str, marker: str) -> None:
    reply, threat = TEXTS[lang]
    assert strip_quotes(f"{reply}\n\n{marker}\n\n{threat}\n") == reply


def test_quoted_lines_are_removed_wherever_they_are() -> None:
    text = "> Pay or else.\n>> Older threat.\nNo, I will not pay twice.\n> You will regret it.\nPlease check again."
    assert strip_quotes(text) == "No, I will not pay twice.\nPlease check again."


def test_bottom_posted_reply_under_a_quote_header_is_kept() -> None:
    text = (
        "On Mon, Jan 1, 2024 at 10:00 AM Support <support@shop.example> wrote:\n"
        "> We cannot refund opened items.\n>\n> Regards\n\n"
        "Then I will see you in court."
    )
    assert strip_quotes(text) == "Then I will see you in court."


def test_signature_after_delimiter_is_removed() -> None:
    assert strip_quotes("Where is my order?\n\n-- \nJane Doe\nACME Ltd\n+1 555 0100") == "Where is my order?"
    assert strip_quotes("Where is my order?\n--\nJane") == "Where is my order?"


@pytest.mark.parametrize(
    "line",
    [
        "Sent from my iPhone",
        "Sent from my Samsung Galaxy smartphone.",
        "Get Outlook for iOS<https://aka.ms/o0ukef>",
        "Sent from Mail for Windows",
        "Envoyé de mon iPhone",
        "Von meinem iPhone gesendet",
        "Enviado desde mi iPhone",
        "Inviato da iPhone",
        "Enviado do meu iPhone",
        "Verzonden met mijn iPhone",
        "Отправлено с iPhone",
        "Wysłane z mojego iPhone'a",
        "iPhone'umdan gönderildi",
        "נשלח מה-iPhone שלי",
        "أرسلت من الـ iPhone",
    ],
)
def test_sent_from_device_lines_are_removed(line: str) -> None:
    assert strip_quotes(f"Where is my order?\n\n{line}") == "Where is my order?"


def test_sentences_that_only_start_like_a_device_line_are_kept() -> None:
    text = "Sent from my iPhone. I know where your office is.\nSent from my lawyer's office, this is final notice"
    assert strip_quotes(text) == text


def test_only_quoted_content_gives_the_text_before_the_first_quote() -> None:
    only_quote = "On Mon, Jan 1, 2024 at 10:00 AM John <john@example.com> wrote:\n> I will sue you."
    assert strip_quotes(only_quote) == ""
    assert strip_quotes("> I will sue you.\n> Really.") == ""
    signed = "-- \nJane Doe\n\nOn Mon, Jan 1, 2024 at 10:00 AM John <john@example.com> wrote:\n> I will sue you."
    assert strip_quotes(signed) == "--\nJane Doe"


def test_letters_are_not_mistaken_for_quote_headers() -> None:
    memo = "From: Smith & Partners LLP\nTo: Shop Ltd\nDate: 1 March 2024\nRe: Letter before action\n\nPay in 14 days."
    assert strip_quotes(memo) == memo
    recounted = "On 1 March your agent wrote:\nwe will refund you.\nThat was a lie and I will sue."
    assert strip_quotes(recounted) == recounted
    banner = "----- IMPORTANT -----\nThis is your last warning."
    assert strip_quotes(banner) == banner
    closing = "Thanks,\nbut if you do not pay I will go to the police.\nWarning: this is final."
    assert strip_quotes(closing) == closing


def test_hyphen_lists_are_kept() -> None:
    text = "My demands:\n- a full refund\n- a written apology"
    assert strip_quotes(text) == text


def test_whitespace_and_bidi_marks_are_normalised() -> None:
    text = f"\r\n  {RLM}שלום{RLM}  \r\n\r\n\r\n\r\nעוד שורה\u00a0כאן  \r\n"
    assert strip_quotes(text) == "שלום\n\nעוד שורה כאן"


def test_empty_input() -> None:
    assert strip_quotes("") == ""
    assert strip_quotes(" \n\n ") == ""


def test_hostile_long_lines_do_not_hang() -> None:
    # mail-parser-reply's English pattern backtracks quadratically on a long
    # line starting with "On"; this input would take minutes through it.
    text = "On " + "and on " * 20000 + "wrote\n" + ("On x " * 50 + "\n") * 200
    assert strip_quotes(text).startswith("On and on")
