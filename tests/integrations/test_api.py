"""The consent API: reads, decisions from other channels, the audience and
its changes, the inventory, and the call log."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import DatabaseError, transaction

from consents.models import ConsentEvent, Decision
from consents.services import purpose_retire
from integrations.models import ApiCall, ApiScope
from rights import services as rights_services
from rights.models import Kind
from tests.conftest import make_user
from tests.integrations.conftest import grant, make_key, withdraw

PROBLEM = "application/problem+json"


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"].endswith(f"#problem-{code}")
    assert body["title"] and body["detail"]
    return body


# A person's consents ----------------------------------------------------------------


def test_it_reads_a_persons_consents_with_the_notice_behind_each(api, customer, purposes):
    event = grant(customer, purposes["newsletter"])
    withdraw(customer, purposes["recommendations"]) or grant(customer, purposes["recommendations"])
    response = api.get(f"/api/v1/subjects/{customer.subject_id}/consents")
    assert response.status_code == 200
    body = response.json()
    assert body["subject_id"] == str(customer.subject_id)
    newsletter = next(c for c in body["consents"] if c["purpose"] == "newsletter")
    assert newsletter["decision"] == "granted"
    assert newsletter["processing_allowed"] is True
    assert newsletter["notice_version"] == event.notice.version
    assert newsletter["notice_sha256"] == event.notice.content_hash
    assert newsletter["receipt"] == str(event.uuid)
    assert newsletter["method"] == "panel"


def test_a_restriction_stops_processing_in_the_answer(api, customer, purposes):
    grant(customer, purposes["newsletter"])
    rights_services.request_create(
        user=customer, kind=Kind.RESTRICTION, purposes=[purposes["newsletter"]]
    )
    body = api.get(f"/api/v1/subjects/{customer.subject_id}/consents").json()
    (newsletter,) = body["consents"]
    assert newsletter["granted"] is True
    assert newsletter["objection_or_restriction"] is True
    assert newsletter["processing_allowed"] is False


def test_an_unknown_subject_is_a_404_problem(api, purposes):
    problem(api.get(f"/api/v1/subjects/{uuid.uuid4()}/consents"), 404, "unknown-subject")


def test_a_known_person_without_decisions_has_an_empty_list(api, customer):
    response = api.get(f"/api/v1/subjects/{customer.subject_id}/consents")
    assert response.json() == {"subject_id": str(customer.subject_id), "consents": []}


def test_reading_costs_the_same_queries_at_two_sizes(
    api, customer, purposes, django_assert_max_num_queries
):
    grant(customer, purposes["newsletter"])
    with django_assert_max_num_queries(8) as few:
        api.get(f"/api/v1/subjects/{customer.subject_id}/consents")
    for key in ("recommendations", "tailored-offers", "product-research"):
        grant(customer, purposes[key])
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = api.get(f"/api/v1/subjects/{customer.subject_id}/consents")
    assert len(response.json()["consents"]) == 4


def test_it_looks_a_person_up_by_email_in_the_body(api, customer, purposes):
    grant(customer, purposes["newsletter"])
    response = api.post("/api/v1/consents/lookup", {"email": "  CUSTOMER@example.com "})
    assert response.status_code == 200
    assert response.json()["subject_id"] == str(customer.subject_id)
    nobody = api.post("/api/v1/consents/lookup", {"email": "nobody@example.com"})
    problem(nobody, 404, "unknown-subject")


def test_an_email_is_never_accepted_in_the_url(api, customer):
    response = api.get("/api/v1/consents/lookup", {"email": customer.email})
    assert response.status_code == 405
    # The call log keeps the person by subject id only, never the address.
    api.post("/api/v1/consents/lookup", {"email": customer.email})
    call = ApiCall.objects.get(operation="consents_by_email")
    assert call.subject_id == customer.subject_id
    assert customer.email not in json.dumps(list(ApiCall.objects.values()), default=str)


# Decisions made in another channel ---------------------------------------------------


def decision(person, purpose, *, version=None, decision="granted", method="checkout"):
    notice = purpose.notices.order_by("-version").first()
    return {
        "subject_id": str(person.subject_id),
        "purpose": purpose.key,
        "decision": decision,
        "notice_version": version or notice.version,
        "method": method,
    }


def test_it_records_a_decision_from_the_checkout(api, customer, purposes):
    response = api.post("/api/v1/decisions", decision(customer, purposes["newsletter"]))
    assert response.status_code == 201, response.content
    body = response.json()
    event = ConsentEvent.objects.get(uuid=body["receipt"])
    assert (event.subject_id, event.decision, event.method) == (
        customer.subject_id,
        Decision.GRANTED,
        "checkout",
    )
    again = api.post("/api/v1/decisions", decision(customer, purposes["newsletter"]))
    assert again.status_code == 200
    assert again.json()["recorded"] is False
    withdrawn = api.post(
        "/api/v1/decisions",
        decision(customer, purposes["newsletter"], decision="refused", method="call_centre"),
    )
    assert withdrawn.status_code == 201
    assert withdrawn.json()["decision"] == "withdrawn"
    assert ConsentEvent.objects.filter(subject_id=customer.subject_id).count() == 2


@pytest.fixture
def newer_notice(purposes, staff):
    """The newsletter's notice changes: version 1 is stale from now on."""
    from consents.services import purpose_notice_refresh

    purpose = purposes["newsletter"]
    purpose.description = purpose.description + " Now weekly."
    purpose.save(update_fields=["description"])
    notice = purpose_notice_refresh(purpose=purpose)
    assert notice.version == 2
    return notice


def test_a_stale_notice_is_refused_and_nothing_recorded(api, customer, purposes, newer_notice):
    before = ConsentEvent.objects.count()
    body = problem(
        api.post("/api/v1/decisions", decision(customer, purposes["newsletter"], version=1)),
        409,
        "notice-stale",
    )
    assert body["current_notice_version"] == 2
    problem(
        api.post("/api/v1/decisions", decision(customer, purposes["newsletter"], version=9)),
        409,
        "notice-stale",
    )
    assert ConsentEvent.objects.count() == before


def test_a_retired_purpose_is_refused_and_nothing_recorded(api, customer, purposes, staff):
    purpose_retire(purpose=purposes["newsletter"], acting_user=staff)
    before = ConsentEvent.objects.count()
    problem(
        api.post("/api/v1/decisions", decision(customer, purposes["newsletter"])),
        409,
        "purpose-retired",
    )
    assert ConsentEvent.objects.count() == before


def test_a_purpose_not_on_consent_is_refused_and_nothing_recorded(api, customer, purposes):
    before = ConsentEvent.objects.count()
    problem(
        api.post("/api/v1/decisions", decision(customer, purposes["account-orders"])),
        422,
        "not-on-consent",
    )
    assert ConsentEvent.objects.count() == before


@pytest.mark.parametrize(
    "change",
    [
        {"method": "panel"},  # only other channels come through the API
        {"decision": "maybe"},
        {"notice_version": 0},
        {"subject_id": "not-a-uuid"},
    ],
)
def test_a_malformed_decision_is_a_422_problem(api, customer, purposes, change):
    body = problem(
        api.post("/api/v1/decisions", {**decision(customer, purposes["newsletter"]), **change}),
        422,
        "validation",
    )
    assert body["errors"]
    assert ConsentEvent.objects.count() == 0


def test_unknown_people_and_purposes_are_refused(api, customer, purposes):
    stranger = decision(customer, purposes["newsletter"])
    stranger["subject_id"] = str(uuid.uuid4())
    problem(api.post("/api/v1/decisions", stranger), 404, "unknown-subject")
    unknown = {**decision(customer, purposes["newsletter"]), "purpose": "no-such-purpose"}
    problem(api.post("/api/v1/decisions", unknown), 404, "unknown-purpose")
    assert ConsentEvent.objects.count() == 0


# The audience ---------------------------------------------------------------------------


def walk(api, key, limit, secret=None):
    """Every page of an audience; returns (subject ids, emails, changes cursor)."""
    subjects, emails, cursor = [], [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api.get(
            f"/api/v1/purposes/{key}/audience", params, **({"key": secret} if secret else {})
        )
        assert response.status_code == 200, response.content
        page = response.json()
        assert len(page["items"]) <= limit
        subjects += [item["subject_id"] for item in page["items"]]
        emails += [item.get("email") for item in page["items"]]
        if page["next_cursor"] is None:
            return subjects, emails, page["changes_cursor"]
        assert page["changes_cursor"] is None
        cursor = page["next_cursor"]


@pytest.fixture
def people(purposes):
    people = [make_user(f"person{i}@example.com") for i in range(7)]
    for person in people:
        grant(person, purposes["newsletter"])
    return people


def test_the_audience_is_everyone_granted_and_not_objecting(api, purposes, people):
    withdraw(people[1], purposes["newsletter"])
    rights_services.request_create(
        user=people[2], kind=Kind.OBJECTION, purposes=[purposes["newsletter"]]
    )
    grant(people[3], purposes["recommendations"])  # another purpose: not in this audience
    subjects, emails, _cursor = walk(api, "newsletter", limit=2)
    expected = [str(p.subject_id) for i, p in enumerate(people) if i not in (1, 2)]
    assert subjects == expected
    assert emails == [None] * len(expected)  # no audience:email scope


def test_emails_come_only_with_the_scope_and_where_the_purpose_uses_them(
    api, staff, purposes, people
):
    secret = make_key(staff, [ApiScope.AUDIENCE_READ, ApiScope.AUDIENCE_EMAIL])
    _subjects, emails, _cursor = walk(api, "newsletter", limit=3, secret=secret)
    assert emails == [p.email for p in people]
    # Recommendations do not use the address: none is given, whatever the scope.
    grant(people[0], purposes["recommendations"])
    assert "email" not in purposes["recommendations"].data_categories.values_list("key", flat=True)
    _subjects, emails, _cursor = walk(api, "recommendations", limit=3, secret=secret)
    assert emails == [None]
    # Without the scope, none either.
    _subjects, emails, _cursor = walk(api, "newsletter", limit=3)
    assert set(emails) == {None}


def test_changes_since_the_walk_bring_a_system_up_to_date(api, purposes, people):
    subjects, _emails, cursor = walk(api, "newsletter", limit=3)
    newcomer = make_user("newcomer@example.com")
    grant(newcomer, purposes["newsletter"])
    withdraw(people[0], purposes["newsletter"])
    grant(people[4], purposes["recommendations"])  # another purpose: not a change here
    response = api.get("/api/v1/purposes/newsletter/audience/changes", {"cursor": cursor})
    assert response.status_code == 200, response.content
    page = response.json()
    assert page["items"] == [
        {"subject_id": str(newcomer.subject_id), "in_audience": True},
        {"subject_id": str(people[0].subject_id), "in_audience": False},
    ]
    assert page["more"] is False
    # Applying them gives the audience of now.
    audience = set(subjects) | {str(newcomer.subject_id)}
    audience -= {str(people[0].subject_id)}
    assert audience == set(walk(api, "newsletter", limit=100)[0])
    # From the new cursor, nothing more.
    again = api.get(
        "/api/v1/purposes/newsletter/audience/changes", {"cursor": page["next_cursor"]}
    ).json()
    assert again["items"] == []


def test_changes_come_in_pages(api, purposes, people):
    _subjects, _emails, cursor = walk(api, "newsletter", limit=100)
    for person in people[:5]:
        withdraw(person, purposes["newsletter"])
    seen = []
    while True:
        page = api.get(
            "/api/v1/purposes/newsletter/audience/changes", {"cursor": cursor, "limit": 2}
        ).json()
        seen += [item["subject_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not page["more"]:
            break
    assert seen == [str(p.subject_id) for p in people[:5]]


def changes(api, key, cursor) -> tuple[list[dict], str]:
    """Every change since the cursor, page by page; returns (items, next cursor)."""
    items = []
    while True:
        response = api.get(f"/api/v1/purposes/{key}/audience/changes", {"cursor": cursor})
        assert response.status_code == 200, response.content
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["more"]:
            return items, cursor


@pytest.mark.parametrize("kind", [Kind.OBJECTION, Kind.RESTRICTION])
def test_an_objection_or_restriction_after_the_walk_is_a_removal(api, purposes, people, kind):
    subjects, _emails, cursor = walk(api, "newsletter", limit=100)
    assert str(people[2].subject_id) in subjects
    rights_services.request_create(user=people[2], kind=kind, purposes=[purposes["newsletter"]])
    # One covering another purpose is no change here.
    rights_services.request_create(
        user=people[3], kind=kind, purposes=[purposes["recommendations"]]
    )
    items, cursor = changes(api, "newsletter", cursor)
    assert items == [{"subject_id": str(people[2].subject_id), "in_audience": False}]
    assert changes(api, "newsletter", cursor)[0] == []  # seen once
    assert str(people[2].subject_id) not in walk(api, "newsletter", limit=100)[0]


def test_restrictions_come_in_pages_beside_decisions(api, purposes, people):
    _subjects, _emails, cursor = walk(api, "newsletter", limit=100)
    for person in people[:3]:
        rights_services.request_create(
            user=person, kind=Kind.RESTRICTION, purposes=[purposes["newsletter"]]
        )
    withdraw(people[5], purposes["newsletter"])
    seen = []
    while True:
        page = api.get(
            "/api/v1/purposes/newsletter/audience/changes", {"cursor": cursor, "limit": 2}
        ).json()
        assert len(page["items"]) <= 4  # at most `limit` events and `limit` requests
        seen += [(item["subject_id"], item["in_audience"]) for item in page["items"]]
        cursor = page["next_cursor"]
        if not page["more"]:
            break
    assert sorted(seen) == sorted([(str(p.subject_id), False) for p in [*people[:3], people[5]]])


def test_a_changes_cursor_given_before_requests_were_followed_still_works(api, purposes, people):
    import base64

    def old_cursor(*numbers) -> str:
        raw = ".".join(["c", *map(str, numbers)]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    last = ConsentEvent.objects.order_by("-pk").first().pk
    rights_services.request_create(
        user=people[1], kind=Kind.RESTRICTION, purposes=[purposes["newsletter"]]
    )
    items, _cursor = changes(api, "newsletter", old_cursor(purposes["newsletter"].pk, last))
    assert items == [{"subject_id": str(people[1].subject_id), "in_audience": False}]


@pytest.mark.parametrize("cursor", ["junk", "YS4xLjI", "Yy4xLjI", "Yy4tMS4y"])
def test_a_forged_cursor_is_a_400_problem(api, purposes, cursor):
    problem(
        api.get("/api/v1/purposes/newsletter/audience", {"cursor": cursor}), 400, "invalid-cursor"
    )
    problem(
        api.get("/api/v1/purposes/newsletter/audience/changes", {"cursor": cursor}),
        400,
        "invalid-cursor",
    )


def test_a_cursor_of_another_purpose_is_refused(api, purposes, people):
    _subjects, _emails, cursor = walk(api, "newsletter", limit=100)
    problem(
        api.get("/api/v1/purposes/recommendations/audience/changes", {"cursor": cursor}),
        400,
        "invalid-cursor",
    )


def test_audiences_of_retired_unknown_and_non_consent_purposes(api, purposes, staff):
    purpose_retire(purpose=purposes["newsletter"], acting_user=staff)
    problem(api.get("/api/v1/purposes/newsletter/audience"), 409, "purpose-retired")
    problem(api.get("/api/v1/purposes/nothing/audience"), 404, "unknown-purpose")
    problem(api.get("/api/v1/purposes/account-orders/audience"), 422, "not-on-consent")


# The inventory ------------------------------------------------------------------------


def test_the_inventory_is_what_privacy_json_says(api, client, purposes):
    response = api.get("/api/v1/inventory")
    assert response.status_code == 200
    assert response.json() == client.get("/privacy.json").json()
    assert {p["key"] for p in response.json()["purposes"]} == set(purposes)


# The call log -------------------------------------------------------------------------


def test_every_call_is_one_row_of_the_call_log(api, customer, purposes, staff):
    api.get(f"/api/v1/subjects/{customer.subject_id}/consents")
    api.post("/api/v1/decisions", decision(customer, purposes["account-orders"]))
    reader = make_key(staff, [ApiScope.CONSENTS_READ])
    api.post("/api/v1/decisions", decision(customer, purposes["newsletter"]), key=reader)
    calls = list(ApiCall.objects.order_by("pk").values_list("operation", "status", "subject_id"))
    assert calls == [
        ("consents_by_subject", 200, customer.subject_id),
        ("decision_record", 422, customer.subject_id),
        ("decision_record", 403, None),  # refused before the body was read
    ]
    row = ApiCall.objects.first()
    with pytest.raises(DatabaseError), transaction.atomic():
        ApiCall.objects.filter(pk=row.pk).update(status=500)
    with pytest.raises(DatabaseError), transaction.atomic():
        ApiCall.objects.filter(pk=row.pk).delete()


@pytest.mark.django_db(transaction=True)
def test_the_call_log_row_is_written_outside_any_transaction(
    flushed_after, api, customer, purposes
):
    """Requests run in autocommit: on PostgreSQL the row takes its one-message
    path (api_call_record), which must write exactly what the ORM would."""
    grant(customer, purposes["newsletter"])
    assert api.get(f"/api/v1/subjects/{customer.subject_id}/consents").status_code == 200
    call = ApiCall.objects.get()
    assert (call.operation, call.method, call.status, call.subject_id, call.purpose) == (
        "consents_by_subject",
        "GET",
        200,
        customer.subject_id,
        "",
    )


def _lift(request, how: str, staff, person) -> None:
    if how == "answered":
        rights_services.request_complete(request=request, acting_user=staff, answer="Checked.")
    elif how == "refused":
        rights_services.request_refuse(request=request, reason="Not founded.", acting_user=staff)
    else:
        rights_services.request_cancel(request=request, user=person)


@pytest.mark.parametrize(
    ("kind", "how", "back_in"),
    [
        (Kind.RESTRICTION, "answered", True),
        (Kind.RESTRICTION, "refused", True),
        (Kind.RESTRICTION, "withdrawn", True),
        # An objection withdrew the grant when it was made: lifted, the person
        # is a change, still out of the audience until they grant it again.
        (Kind.OBJECTION, "refused", False),
        (Kind.OBJECTION, "withdrawn", False),
    ],
)
def test_a_lifted_objection_or_restriction_is_a_change(
    api, purposes, people, staff, kind, how, back_in
):
    request = rights_services.request_create(
        user=people[2], kind=kind, purposes=[purposes["newsletter"]]
    )
    other = rights_services.request_create(
        user=people[3], kind=kind, purposes=[purposes["recommendations"]]
    )
    subjects, _emails, cursor = walk(api, "newsletter", limit=100)
    assert str(people[2].subject_id) not in subjects
    _lift(request, how, staff, people[2])
    _lift(other, how, staff, people[3])  # another purpose's: no change here
    items, cursor = changes(api, "newsletter", cursor)
    assert items == [{"subject_id": str(people[2].subject_id), "in_audience": back_in}]
    assert changes(api, "newsletter", cursor)[0] == []  # seen once
    assert (str(people[2].subject_id) in walk(api, "newsletter", limit=100)[0]) is back_in


def test_an_objection_upheld_is_not_lifted(api, purposes, people, staff):
    request = rights_services.request_create(
        user=people[2], kind=Kind.OBJECTION, purposes=[purposes["newsletter"]]
    )
    _subjects, _emails, cursor = walk(api, "newsletter", limit=100)
    rights_services.request_complete(request=request, acting_user=staff, answer="Stopped.")
    assert changes(api, "newsletter", cursor)[0] == []
    grant(people[2], purposes["newsletter"])  # granting again does not undo the objection
    items, _cursor = changes(api, "newsletter", cursor)
    assert items == [{"subject_id": str(people[2].subject_id), "in_audience": False}]


def test_lifts_come_in_pages_beside_decisions_and_requests(api, purposes, people, staff):
    restrictions = [
        rights_services.request_create(
            user=person, kind=Kind.RESTRICTION, purposes=[purposes["newsletter"]]
        )
        for person in people[:3]
    ]
    _subjects, _emails, cursor = walk(api, "newsletter", limit=100)
    for request in restrictions:
        rights_services.request_cancel(request=request, user=request.user)
    rights_services.request_create(
        user=people[4], kind=Kind.RESTRICTION, purposes=[purposes["newsletter"]]
    )
    withdraw(people[5], purposes["newsletter"])
    seen, pages = [], 0
    while True:
        page = api.get(
            "/api/v1/purposes/newsletter/audience/changes", {"cursor": cursor, "limit": 2}
        ).json()
        assert len(page["items"]) <= 6  # at most `limit` of events, requests and lifts
        seen += [(item["subject_id"], item["in_audience"]) for item in page["items"]]
        cursor, pages = page["next_cursor"], pages + 1
        if not page["more"]:
            break
    assert pages >= 2
    expected = [(str(p.subject_id), True) for p in people[:3]]
    expected += [(str(people[4].subject_id), False), (str(people[5].subject_id), False)]
    assert sorted(seen) == sorted(expected)


def test_a_changes_cursor_given_before_lifts_were_followed_still_works(
    api, purposes, people, staff
):
    import base64

    request = rights_services.request_create(
        user=people[1], kind=Kind.RESTRICTION, purposes=[purposes["newsletter"]]
    )
    _subjects, _emails, cursor = walk(api, "newsletter", limit=100)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    three = ".".join(raw.split(".")[:4])  # c, purpose, events, requests: no lifts yet
    old = base64.urlsafe_b64encode(three.encode()).decode().rstrip("=")
    rights_services.request_cancel(request=request, user=people[1])
    items, _cursor = changes(api, "newsletter", old)
    assert items == [{"subject_id": str(people[1].subject_id), "in_audience": True}]
