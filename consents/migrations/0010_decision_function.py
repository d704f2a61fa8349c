"""A decision in one call on PostgreSQL: consents_decide() takes the locks,
reads what the decision depends on, applies the decision rules, inserts the
event with its content hash and sets the state, in one round trip and with
plans the database keeps (consents.ledger.decide calls it; SQLite keeps the
Python path in consents.services, and tests/consents/test_decide_in_sql.py
holds the two to the same events and the same hashes).

consents_policy_in_force(day) is the policies app's to define (its migration
0005 replaces it): the privacy policy version in force on that day and the
hash of its text, as policies.selectors.version_in_force_for_ledger reads it.
Until then it finds none. It is a plain SQL query, so that PostgreSQL inlines
it into the decision's own plan. A later change to either function is a new
migration with CREATE OR REPLACE."""

from __future__ import annotations

from django.db import migrations

# consents.ledger.LEDGER_LOCK and SUBJECT_LOCK_CLASS, written out: a migration
# does not change with the code (test_decide_in_sql checks they still agree).
LEDGER_LOCK = 0x436C_6172_657A_61
SUBJECT_LOCK_CLASS = 0x436C

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION consents_policy_in_force(p_day date)
RETURNS TABLE (id bigint, hash text)
LANGUAGE sql STABLE AS $$ SELECT NULL::bigint, NULL::text WHERE false $$;

CREATE OR REPLACE FUNCTION consents_decide(
    p_subject uuid,
    p_purpose bigint,
    p_decision text,
    p_method text,
    p_notice bigint,          -- the notice the person read, or NULL: the current one
    p_policy bigint,          -- a policy version given by the caller, or NULL: the one in force
    p_policy_hash text,       -- the hash of the given version's text
    p_day date,               -- today, in the portal's time zone (which version is in force)
    p_allow_retired boolean,
    p_reconfirm boolean,
    p_uuid uuid,
    p_created_at timestamptz, -- NULL: the database's clock, read once the locks are held
    p_ip text,
    p_ua text,
    p_gpc boolean,
    OUT status text,          -- recorded, repeated, retired, no_notice or notice_changed
    OUT event_id bigint,
    OUT decision text,
    OUT notice_id bigint,
    OUT policy_version_id bigint,
    OUT policy_hash text,
    OUT created_at timestamptz,
    OUT hash text
) LANGUAGE plpgsql AS $$
DECLARE
    v_notice_hash text;
    v_retired boolean;
    v_current text;
    v_state_event bigint;
BEGIN
    -- The ledger shared (the sealer and a retirement wait for the decisions
    -- under way), the person exclusive (their decisions one at a time).
    PERFORM pg_advisory_xact_lock_shared({LEDGER_LOCK}),
            pg_advisory_xact_lock({SUBJECT_LOCK_CLASS}, hashtext(p_subject::text));
    -- Each statement of a function takes a new snapshot: this one sees every
    -- decision committed before the locks were granted.
    SELECT n.id, n.content_hash, p.retired_at IS NOT NULL, s.decision, s.event_id
      INTO notice_id, v_notice_hash, v_retired, v_current, v_state_event
      FROM consents_purpose p
      LEFT JOIN LATERAL (
          SELECT x.id, x.content_hash FROM consents_purposenotice x
          WHERE x.purpose_id = p.id ORDER BY x.version DESC LIMIT 1
      ) n ON true
      LEFT JOIN consents_consentstate s ON s.purpose_id = p.id AND s.subject_id = p_subject
     WHERE p.id = p_purpose;
    IF NOT FOUND OR (v_retired AND NOT p_allow_retired) THEN
        status := 'retired';
        RETURN;
    END IF;
    IF notice_id IS NULL THEN
        status := 'no_notice';
        RETURN;
    END IF;
    IF p_notice IS NOT NULL AND p_notice <> notice_id THEN
        status := 'notice_changed';
        RETURN;
    END IF;
    -- consents.services._effective_decision
    decision := CASE
        WHEN v_current = 'granted' AND p_decision = 'refused' THEN 'withdrawn'
        WHEN v_current IS NULL THEN nullif(p_decision, 'withdrawn')
        WHEN (v_current = 'granted') = (p_decision = 'granted') THEN NULL
        ELSE p_decision
    END;
    -- consents.services._reconsent_asked: a grant given again while it is asked.
    IF decision IS NULL AND p_reconfirm AND p_decision = 'granted' THEN
        IF EXISTS (
            SELECT 1 FROM consents_reconsentrequest r
            WHERE r.purpose_id = p_purpose AND r.lapsed_at IS NULL
              AND r.asked_at > (SELECT e.created_at FROM consents_consentevent e
                                WHERE e.id = v_state_event)
        ) THEN
            decision := 'granted';
        END IF;
    END IF;
    IF decision IS NULL THEN
        status := 'repeated';
        RETURN;
    END IF;
    IF p_policy IS NULL THEN
        SELECT f.id, f.hash INTO policy_version_id, policy_hash
          FROM consents_policy_in_force(p_day) f;
    ELSE
        policy_version_id := p_policy;
        policy_hash := p_policy_hash;
    END IF;
    created_at := coalesce(p_created_at, clock_timestamp());
    -- consents.ledger.event_hash (format clareza-event-v2)
    hash := encode(sha256(convert_to(concat_ws(chr(31),
        'clareza-event-v2',
        p_uuid::text,
        p_subject::text,
        p_purpose::text,
        v_notice_hash,
        coalesce(policy_version_id::text, ''),
        coalesce(policy_hash, ''),
        decision,
        p_method,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        p_ip,
        p_ua,
        CASE WHEN p_gpc THEN 'gpc' ELSE '' END
    ), 'UTF8')), 'hex');
    INSERT INTO consents_consentevent (
        uuid, subject_id, purpose_id, notice_id, policy_version_id, decision, method,
        created_at, ip_truncated, user_agent_family, gpc_signal, prev_hash, hash
    ) VALUES (
        p_uuid, p_subject, p_purpose, notice_id, policy_version_id, decision, p_method,
        created_at, p_ip, p_ua, p_gpc, '', hash
    ) RETURNING id INTO event_id;
    -- consents.ledger.state_set
    INSERT INTO consents_consentstate (subject_id, purpose_id, decision, event_id, updated_at)
    VALUES (p_subject, p_purpose, decision, event_id, created_at)
    ON CONFLICT (subject_id, purpose_id) DO UPDATE SET decision = excluded.decision,
        event_id = excluded.event_id, updated_at = excluded.updated_at;
    status := 'recorded';
END;
$$;
"""

POSTGRES_DOWN = """
DROP FUNCTION IF EXISTS consents_decide(uuid, bigint, text, text, bigint, bigint, text, date,
    boolean, boolean, uuid, timestamptz, text, text, boolean);
DROP FUNCTION IF EXISTS consents_policy_in_force(date);
"""


def run(sql: str):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [("consents", "0009_merkle_tree")]

    operations = [migrations.RunPython(run(POSTGRES_UP), run(POSTGRES_DOWN))]
