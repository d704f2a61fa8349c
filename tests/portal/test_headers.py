from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from tests.portal.test_settings import PRODUCTION, _start

PAGES = ["/", "/accounts/login/", "/accounts/signup/"]
UNSAFE_SOURCES = {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'wasm-unsafe-eval'"}


def _csp(response) -> dict[str, list[str]]:
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


class _InlineCode(HTMLParser):
    """Collects what a strict CSP would block: script elements with inline code,
    style elements and attributes, event-handler attributes, javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []
        self.problems: list[str] = []
        self._script: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            self._script = {"attrs": attributes, "text": ""}
            self.scripts.append(self._script)
        if tag == "style":
            self.problems.append("<style> element")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style= on <{tag}>: {value!r}")
            if name.startswith("on"):
                self.problems.append(f"{name}= on <{tag}>: {value!r}")
            url = (value or "").strip().lower()
            if name in {"href", "src", "action", "formaction"} and url.startswith("javascript:"):
                self.problems.append(f"javascript: URL in {name}= on <{tag}>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self._script["text"] += data


def _inline_code(html: str) -> _InlineCode:
    parser = _InlineCode()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture(params=[*PAGES, "/ (logged in)"])
def page(request, client, db):
    path = request.param
    if path.endswith("(logged in)"):
        client.force_login(request.getfixturevalue("customer"))
        path = path.split()[0]
    response = client.get(path)
    assert response.status_code == 200, path
    return response


@pytest.mark.django_db
def test_pages_send_a_strict_content_security_policy(page):
    csp = _csp(page)

    assert csp["default-src"] == ["'none'"]
    assert "'self'" in csp["script-src"]
    assert not UNSAFE_SOURCES & set(csp["script-src"])
    assert not any(source.startswith("'nonce-") for source in csp["script-src"])
    assert not UNSAFE_SOURCES & set(csp["style-src"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]


@pytest.mark.django_db
def test_pages_send_the_other_security_headers(page):
    assert page["X-Frame-Options"] == "DENY"
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Referrer-Policy"] in {
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    }
    permissions = {item.strip() for item in page["Permissions-Policy"].split(",")}
    assert {"camera=()", "microphone=()", "geolocation=()", "payment=()"} <= permissions
    assert page["Cross-Origin-Opener-Policy"] == "same-origin"
    assert page["Cross-Origin-Resource-Policy"] == "same-origin"


@pytest.mark.django_db
def test_pages_have_no_inline_script_or_style(page):
    found = _inline_code(page.content.decode())

    assert found.problems == []
    assert found.scripts, "the pages load htmx, so a <script src> is expected"
    for script in found.scripts:
        attrs = script["attrs"]
        if attrs.get("type") == "application/json":
            json.loads(script["text"])  # a data block, which the browser never runs
            continue
        assert attrs.get("src"), f"inline <script>: {script['text'][:200]!r}"
        assert not script["text"].strip(), f"<script src> with a body: {attrs}"


def test_the_inline_code_check_catches_what_csp_would_block():
    found = _inline_code(
        '<p style="color:red" onclick="x()"><a href="javascript:void(0)">a</a></p>'
        "<script>alert(1)</script><script src=/a.js></script>"
        '<script type="application/json">{"a": 1}</script>'
    )

    assert len(found.problems) == 3
    assert [script["text"] for script in found.scripts] == ["alert(1)", "", '{"a": 1}']


# In a separate process so that the production settings (DEBUG=0, secure
# cookies, HSTS) are the ones the settings module was built with. Static files
# use plain storage there: the manifest only exists after collectstatic, which
# these header and cookie checks do not need.
PRODUCTION_REQUESTS = """
import json
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings

PASSWORD = "a-long-Test-pass-42"
call_command("migrate", verbosity=0)
user = get_user_model().objects.create_user(email="prod@example.com", password=PASSWORD)
EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)


def summary(response):
    return {
        "status": response.status_code,
        "location": response.get("Location", ""),
        "hsts": response.get("Strict-Transport-Security", ""),
        "cookies": {
            name: {
                "secure": bool(morsel["secure"]),
                "httponly": bool(morsel["httponly"]),
                "samesite": morsel["samesite"],
            }
            for name, morsel in response.cookies.items()
        },
    }


storages = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
with override_settings(STORAGES=storages):
    client = Client(enforce_csrf_checks=True, HTTP_HOST="privacy.example.com")
    plain = client.get("/accounts/login/")
    page = client.get("/accounts/login/", secure=True)
    login = client.post(
        "/accounts/login/",
        {
            "login": user.email,
            "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
        secure=True,
        HTTP_ORIGIN="https://privacy.example.com",
    )
results = {"plain": summary(plain), "page": summary(page), "login": summary(login)}
print("RESULT " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    database = tmp_path_factory.mktemp("production") / "db.sqlite3"
    result = _start(
        {
            **PRODUCTION,
            "DATABASE_URL": f"sqlite:///{database}",
            "REDIS_URL": "",
            "EMAIL_URL": "console://",
        },
        "shell",
        "-c",
        PRODUCTION_REQUESTS,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0].removeprefix("RESULT "))


def test_production_redirects_plain_http_to_https(production):
    assert production["plain"]["status"] == 301
    assert production["plain"]["location"] == "https://privacy.example.com/accounts/login/"


def test_production_sends_hsts_of_at_least_half_a_year_over_https(production):
    assert production["page"]["status"] == 200
    for response in (production["page"], production["login"]):
        directives = [item.strip() for item in response["hsts"].split(";")]
        max_age = [d for d in directives if d.startswith("max-age=")]
        assert max_age, response["hsts"]
        assert int(max_age[0].removeprefix("max-age=")) >= 15_552_000
        assert "includeSubDomains" in directives


def test_production_cookies_are_secure_httponly_and_samesite_lax(production):
    assert set(production["page"]["cookies"]) == {"csrftoken"}
    assert production["login"]["status"] == 302, "the login must succeed to set a session"
    assert {"sessionid", "csrftoken"} <= set(production["login"]["cookies"])
    cookies = [production["page"]["cookies"]["csrftoken"], *production["login"]["cookies"].values()]
    for cookie in cookies:
        assert cookie == {"secure": True, "httponly": True, "samesite": "Lax"}
