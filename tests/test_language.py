"""detect_language: ISO 639-1 codes on short mail-like samples, "und" when unsure."""

from __future__ import annotations

import threading

import pytest

from service.mail import language
from service.mail.language import detect_language

SAMPLES = {
    "ar": "مرحبا، أكتب إليكم بخصوص طلبي الأخير. لم يصل الطرد حتى الآن وأرجو منكم متابعة الموضوع. شكرا لكم.",
    "he": "שלום, אני כותב לגבי ההזמנה האחרונה שלי. החבילה עדיין לא הגיעה ואשמח אם תבדקו את הנושא. תודה רבה.",
    "en": "Hello, I am writing about my recent order. The parcel has not arrived yet and I would like you to look "
    "into it. Thanks.",
    "fr": "Bonjour, je vous écris au sujet de ma dernière commande. Le colis n'est toujours pas arrivé. Merci de "
    "vérifier.",
    "de": "Hallo, ich schreibe wegen meiner letzten Bestellung. Das Paket ist noch nicht angekommen. Bitte prüfen Sie "
    "das.",
    "es": "Hola, les escribo por mi último pedido. El paquete todavía no ha llegado y quisiera que lo revisaran. "
    "Gracias.",
    "ru": "Здравствуйте, пишу по поводу моего последнего заказа. Посылка до сих пор не пришла, прошу проверить. "
    "Спасибо.",
    "tr": "Merhaba, son siparişim hakkında yazıyorum. Paket hâlâ gelmedi, lütfen kontrol eder misiniz? Teşekkürler.",
    "fa": "سلام، من در مورد سفارش اخیرم می‌نویسم. بسته هنوز به دستم نرسیده است و خواهش می‌کنم پیگیری کنید. "
    "با تشکر.",
}

THREATS = {
    "ar": "إذا لم تعيدوا أموالي خلال ثلاثة أيام فسأرفع دعوى قضائية ضد شركتكم. هذا إنذار أخير.",
    "he": "אם לא תחזירו לי את הכסף תוך שלושה ימים, אגיש נגדכם תביעה משפטית. זו התראה אחרונה.",
    "en": "If you do not refund me by Friday I will take you to court. This is your final warning.",
    "ru": "Если деньги не вернутся до пятницы, я обращусь в суд. Это последнее предупреждение.",
}


@pytest.mark.parametrize("code", sorted(SAMPLES))
def test_language_of_a_short_support_mail(code: str) -> None:
    assert detect_language(SAMPLES[code]) == code


@pytest.mark.parametrize("code", sorted(THREATS))
def test_language_of_a_threat(code: str) -> None:
    assert detect_language(THREATS[code]) == code


def test_regional_arabic_counts_as_arabic() -> None:
    egyptian = "ازيك يا باشا، انا عايز اعرف الطلب بتاعي فين؟ بقالي اسبوعين مستني ومحدش بيرد عليا خالص."
    assert detect_language(egyptian) == "ar"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "ok", "Thanks!", "12345 678 90", "+1 (555) 010-0199", "Order #4411, 2024-01-01 10:00", "🙂🙂🙂"],
)
def test_short_or_letterless_text_is_undetermined(text: str) -> None:
    assert detect_language(text) == "und"


def test_urls_emails_and_numbers_do_not_decide_the_language() -> None:
    noise = " https://shop.example/orders/4411?lang=en support@shop.example 2024-01-01 +1 555 0100 " * 5
    assert detect_language(noise) == "und"
    assert detect_language(noise + SAMPLES["ar"]) == "ar"
    assert detect_language(SAMPLES["he"] + noise) == "he"


def test_long_text_is_decided_by_its_beginning() -> None:
    assert detect_language(SAMPLES["de"] * 12 + SAMPLES["en"] * 200) == "de"


def test_model_loads_once_under_concurrent_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = []
    real = language.LanguageIdentifier.from_model_file

    def counting(*args: object, **kwargs: object) -> language.LanguageIdentifier:
        loads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(language, "_identifier", None)
    monkeypatch.setattr(language.LanguageIdentifier, "from_model_file", counting)
    results: list[str] = []
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        results.append(detect_language(SAMPLES["fr"]))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["fr"] * 8
    assert len(loads) == 1
