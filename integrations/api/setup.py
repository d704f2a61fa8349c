"""What the API adds to the portal at start-up (IntegrationsConfig.ready()):
its call log's retention rule, and the calls about a person in their copy."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

# What a call did, in the words of the person it concerned (their copy). An
# operation missing here is shown by its code.
OPERATION_LABELS = {
    "consents_by_subject": _("Read your consents"),
    "consents_by_email": _("Looked you up by your email address and read your consents"),
    "decision_record": _("Recorded a decision you made elsewhere (checkout, call centre, store)"),
    # A connected system's calls about one of its tasks for a request of yours
    "rights_task": _("Read what it was asked to do for one of your requests"),
    "rights_task_acknowledge": _("Said it had one of your requests in hand"),
    "rights_task_complete": _("Reported what it did for one of your requests"),
    "rights_task_fail": _("Reported that it could not carry out one of your requests, and why"),
}


def ready() -> None:
    from integrations.api import selectors, services
    from rights import export_sections as sections
    from rights import retention

    retention.register(
        retention.Housekeeping(
            "api-calls",
            _(
                "Record of our other systems reading your consents or recording your "
                "decisions through our API"
            ),
            _("kept %(days)s days, then deleted"),
            services.calls_kept,
            services.calls_expired,
            apply=services.calls_purge,
        )
    )
    sections.register(
        sections.Section(
            "api_calls",
            _("Our other systems' requests about you"),
            _(
                "Each time one of our other systems (the shop, the call centre…) read your "
                "consents or recorded a decision of yours through our API: when, which "
                "system, what it did, and the answer it got."
            ),
            (
                sections.Column("at", sections.DATETIME, _("When")),
                sections.Column("system", sections.STRING, _("Which system (its API key)")),
                sections.Column("operation", sections.STRING, _("What (code)")),
                sections.Column("operation_label", sections.STRING, _("What")),
                sections.Column("status", sections.INTEGER, _("Answer (HTTP status)")),
                sections.Column("purpose", sections.STRING, _("Purpose concerned")),
            ),
            lambda person: selectors.calls_about_rows(person.subject_id, OPERATION_LABELS),
            count=lambda person: selectors.calls_about(person.subject_id).count(),
        ),
        after="staff_access",
    )
