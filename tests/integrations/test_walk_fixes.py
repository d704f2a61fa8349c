"""What a walk through the demo in a browser found about connected systems:
the person's page while a copy waits for them, what the copy's summary shows of
their answers and of their API calls, and the admin pages' words in Portuguese."""

from __future__ import annotations

import json
import zipfile

from django.test import Client

from consents.models import DataCategory
from rights import exports
from rights.models import DataExport, ExportStatus
from tests.integrations import test_systems
from tests.integrations.test_systems import TASKS, build_copies, call, record_in_admin, tasks_of
from tests.rights.conftest import emails

world = test_systems.world  # the shop (webhook + key) and the manual CRM
staff_client = test_systems.staff_client

INCOMPLETE = b'id="copy-incomplete"'


def test_a_copy_ready_before_the_systems_answered_says_it_is_not_complete(
    world, customer, staff_client
):
    """A copy is built at once and is downloadable, while the request waits
    for the shop and the CRM: the page and the email say so instead of only
    'ready'."""
    person = Client()
    person.force_login(customer)
    export = exports.export_request(user=customer)
    assert build_copies() == 1
    page = person.get("/me/requests/")
    assert b'id="copy-download"' in page.content
    assert INCOMPLETE in page.content
    (mail,) = emails("emails/rights_export_ready")  # says so too
    for body in (mail.payload["body_text"], mail.payload["body_html"]):
        assert "only what this portal keeps" in body

    tasks = tasks_of(export.request)
    call(person, "post", f"{TASKS}/{tasks['shop'].uuid}/complete", world.secret, {"done": "Done."})
    record_in_admin(staff_client, tasks["crm"], done="Nothing held.")
    assert build_copies() == 1  # the fresh copy, with every answer
    page = person.get("/me/requests/")
    assert b'id="copy-download"' in page.content
    assert INCOMPLETE not in page.content
    complete = [m for m in emails("emails/rights_export_ready") if m.pk != mail.pk]
    assert len(complete) == 1
    assert "only what this portal keeps" not in complete[0].payload["body_text"]


def test_the_summary_shows_a_systems_answer_as_json_and_its_calls_in_words(
    world, customer, staff_client
):
    export = exports.export_request(user=customer)
    tasks = tasks_of(export.request)
    answer = {
        "orders": [{"id": "A-1", "note": "<b>gift</b>"}],
        "flags": {"vip": True, "tier": None},
        "tags": ["x", "y"],
    }
    done = call(
        Client(), "post", f"{TASKS}/{tasks['shop'].uuid}/complete", world.secret,
        {"done": "Exported.", "data": answer},
    )  # fmt: skip
    assert done.status_code == 200, done.content
    record_in_admin(staff_client, tasks["crm"], done="Nothing held.")
    build_copies()
    fresh = DataExport.objects.filter(request=export.request, status=ExportStatus.READY).latest(
        "ready_at"
    )
    archive = zipfile.ZipFile(exports.export_path(fresh))
    summary = archive.read("summary.html").decode()
    # JSON, escaped; never Python's repr ('id', True, None)
    order = "{&quot;id&quot;: &quot;A-1&quot;, &quot;note&quot;: &quot;&lt;b&gt;gift&lt;/b&gt;"
    assert order in summary
    assert "{&quot;vip&quot;: true, &quot;tier&quot;: null}" in summary
    assert "<b>tags</b>: x, y" in summary
    assert "&#x27;id&#x27;" not in summary and "True" not in summary

    calls = json.loads(archive.read("data.json"))["sections"]["api_calls"]
    labels = {row["operation"]: row["operation_label"] for row in calls}
    assert labels["rights_task_complete"] == "Reported what it did for one of your requests"


def test_the_admin_pages_of_systems_and_endpoints_read_in_portuguese(world, staff, staff_client):
    staff.language = "pt-br"
    staff.save(update_fields=["language"])
    category = DataCategory.objects.get(key="email")
    category.name_pt = "Endereço de e-mail (pt)"
    category.save(update_fields=["name_pt"])

    page = staff_client.get(f"/admin/integrations/connectedsystem/{world.shop.pk}/change/")
    assert page.status_code == 200
    assert "Endereço de e-mail (pt)" in page.content.decode()

    page = staff_client.get(f"/admin/integrations/webhookendpoint/{world.hook.endpoint.pk}/change/")
    text = page.content.decode()
    assert page.status_code == 200
    for english in ("Previous secret until", "Failing since", "Created by", "Uuid"):
        assert english not in text, english
    assert "Falhando desde" in text and "Criada por" in text
    page = staff_client.get("/admin/integrations/webhookendpoint/")
    assert "Failing since" not in page.content.decode()


def test_a_tasks_page_shows_what_the_system_holds_as_json(world, customer, staff_client):
    export = exports.export_request(user=customer)
    shop = tasks_of(export.request)["shop"]
    answer = {"consents": {"newsletter": {"allowed": True, "note": "<b>x</b>", "until": None}}}
    done = call(
        Client(), "post", f"{TASKS}/{shop.uuid}/complete", world.secret,
        {"done": "Sent.", "data": answer},
    )  # fmt: skip
    assert done.status_code == 200, done.content
    page = staff_client.get(f"/admin/integrations/systemtask/{shop.pk}/change/")
    text = page.content.decode()
    assert "&quot;allowed&quot;: true" in text and "&quot;until&quot;: null" in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text
    assert "True" not in text and "&#x27;allowed&#x27;" not in text


def test_recording_a_task_closed_meanwhile_says_why_nothing_was_saved(
    world, customer, staff_client
):
    """Two tabs on one manual task: the second 'Record what was done' is refused,
    and the page says so (its form is gone, so its error was shown nowhere)."""
    export = exports.export_request(user=customer)
    crm = tasks_of(export.request)["crm"]
    assert record_in_admin(staff_client, crm, done="From the first tab.").status_code == 302
    page = record_in_admin(staff_client, crm, done="From the second tab.")
    assert page.status_code == 400
    assert "This task is already completed." in page.content.decode()
    crm.refresh_from_db()
    assert crm.done == "From the first tab."
