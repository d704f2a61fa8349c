"""The README's curl block ("Keeping another system in step") runs as
written against a live portal, with the demo shop's key read from
var/demo-shop.json: no example there is made up."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from consents.demo import seed_inventory
from integrations import demo_shop
from integrations.api.services import api_key_create
from tests.conftest import make_user
from tests.integrations.conftest import grant

README = Path(__file__).resolve().parents[2] / "README.md"
# The demo makes its decisions:write key with manage.py shell, in the demo's
# database; here the key is made in the test's.
WRITER_LINE = re.compile(r"WRITER=\$\(\.venv/bin/python manage\.py shell .*?\)\"\)\n", re.S)


def curl_block() -> str:
    text = README.read_text()
    start = text.index("The same by hand, with curl")
    begin = text.index("```sh\n", start) + len("```sh\n")
    return text[begin : text.index("```\n", begin)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_readme_curl_block_works_against_a_live_portal(
    flushed_after, live_server, settings, staff, tmp_path
):
    settings.VAR_DIR = tmp_path / "var"
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.DEMO_SHOP_WEBHOOK_URL = "http://127.0.0.1:9/webhooks/clareza"  # nobody listens
    purposes = {p.key: p for p in seed_inventory()}
    ana = make_user("ana@example.com")
    grant(ana, purposes["newsletter"])
    for i in range(3):
        grant(make_user(f"other{i}@example.com"), purposes["newsletter"])
    demo_shop.seed()
    writer = api_key_create(name="Call centre", scopes=["decisions:write"], acting_user=staff)
    block = curl_block()
    assert block.count("P=http://127.0.0.1:8000\n") == 1
    assert len(WRITER_LINE.findall(block)) == 1
    block = block.replace("P=http://127.0.0.1:8000\n", f"P={live_server.url}\n")
    block = WRITER_LINE.sub(f"WRITER={writer.secret}\n", block)

    result = subprocess.run(
        ["bash", "-e", "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    consents = json.loads(out[: out.index('}]}{"recorded"') + 3])
    assert consents["subject_id"] == str(ana.subject_id)
    assert '"recorded": true' in out and '"decision": "withdrawn"' in out
    changes = json.loads(out[out.rindex('{"purpose":"newsletter"') :])
    assert changes["items"] == [{"subject_id": str(ana.subject_id), "in_audience": False}]
    assert changes["more"] is False
