"""The litmus test with the real model: no shipped template may look hostile if published.

Needs the shipped model in models/warningshot (skipped without it). The
blocking path itself is tested with the marker double in
test_playbook_templates.py and test_playbook_daemon.py.
"""

from __future__ import annotations

import pytest

from classifiers.interface import LABELS
from service.playbook.decide import TEMPLATES
from service.playbook.litmus import litmus
from service.playbook.templates import TemplateRenderer

LANGUAGES = ("ar", "de", "en", "es", "fr", "he")
REFUND = {
    "ar": "سيصلكم المبلغ خلال خمسة أيام عمل.",
    "de": "Die Erstattung erreicht Ihr Konto innerhalb von fünf Werktagen.",
    "en": "The refund reaches your account within five business days.",
    "es": "El reembolso llegará a su cuenta en un plazo de cinco días hábiles.",
    "fr": "Le remboursement vous parviendra sous cinq jours ouvrés.",
    "he": "ההחזר יגיע לחשבונך בתוך חמישה ימי עסקים.",
}


@pytest.mark.model
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_shipped_template_passes_the_litmus_test(shipped_model, language):
    model = shipped_model
    renderer = TemplateRenderer()
    values = {
        "customer_name": "Sam Lee", "agent_name": "Dana", "company": "Acme Plugins", "refund_terms": REFUND[language],
        "docs_link": "https://docs.example.com/checkout/currency.html", "data_export_deadline": "2026-12-23",
        # Quoted customer words are left out of the test, as in production.
        "earlier_words": ["you are useless idiots"],
    }
    failures = {}
    for name in TEMPLATES:
        text = renderer.render(name, language, values).text
        result = litmus(text, language, score=model.predict, thresholds=model.thresholds, labels=LABELS)
        if not result.passed:
            failures[name] = result.scores
    assert failures == {}
