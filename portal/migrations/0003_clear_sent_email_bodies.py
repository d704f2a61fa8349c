"""Emails already sent lose their bodies and headers, which hold working
password-reset and verification links; their metadata stays (portal/mail.py)."""

from django.db import migrations


def clear_sent_bodies(apps, schema_editor):
    OutboundEmail = apps.get_model("portal", "OutboundEmail")
    OutboundEmail.objects.filter(status="sent").update(body_text="", body_html="", headers={})


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_outboundemail_kind"),
    ]

    operations = [
        # Nothing to restore on the way back: the bodies are gone for good.
        migrations.RunPython(clear_sent_bodies, migrations.RunPython.noop),
    ]
