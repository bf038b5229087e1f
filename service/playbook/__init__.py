"""The playbook: per-sender escalation and the replies a human approves.

Modules, each one responsibility:

* ``senders``     normalised sender addresses, the states of the ladder
* ``decide``      the one decision function (warning shot, termination, legal, walk away)
* ``will``        the "Will" pattern: too many new conversations in a window
* ``docs_index``  the docs page closest to a question (injectable embeddings)
* ``templates``   config/templates/<lang>/<name>.txt in a Jinja2 sandbox, admin overrides
* ``litmus``      every draft is scored by the classifier before it is saved
* ``compose``     placeholder values + template + litmus test → a draft or a recorded error
* ``drafts``      the RFC 5322 reply and the forward to counsel (stdlib ``email``)
* ``smtp``        sending with smtplib, errors translated, capped retries
* ``sending``     approval and rejection (the only way a reply leaves)
* ``repository``  the store's queries for all of the above
* ``engine``      :class:`~service.playbook.engine.Playbook`, what the pipeline and the API call

Nothing here sends a reply on its own: the pipeline only drafts; a person
approves through the API.
"""
