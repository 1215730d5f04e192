"""A deterministic lead store for benchmarks, generated inside DuckDB.

Three sources: the largest has `leads` leads, the others a tenth and a hundredth of
that. Every source has 30 custom fields (each filled for about 70 % of leads) and
10 attributes (2 to 4 tags per lead). Values derive from `hash()` of the lead id, so
the same `leads` always gives the same store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from export_pipeline.leads.store import LeadStore

FIELD_COUNT = 30
ATTRIBUTE_COUNT = 10
STATUSES = ["new", "contacted", "qualified", "proposal", "negotiation", "won", "lost", "on hold"]
FIRST_NAMES = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Katherine",
    "John",
    "Hedy",
    "Donald",
    "Sophie",
    "Niklaus",
    "Anita",
    "Guido",
    "Zoë",
    "José",
    "Øyvind",
    "Mária",
]
LAST_NAMES = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Johnson",
    "McCarthy",
    "Lamarr",
    "Knuth",
    "Wilson",
    "Wirth",
    "Borg",
    "van Rossum",
    "O'Neil",
    "Müller",
    "García",
    "Nakamura",
]
WORDS = ["alpha", "beta", "gamma", "delta", "north", "south", "east", "west", "prime", "core"]
CREATED_FROM = datetime(2024, 1, 1, tzinfo=UTC)
CREATED_SPAN_SECONDS = 2 * 365 * 24 * 3600
INSERTED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def field_type(index: int) -> str:
    return ("text", "number", "date", "boolean", "select")[index % 5]


def generate_store(path: Path, *, leads: int) -> dict[str, int]:
    """Write a fresh store at `path`; returns the lead count per source id."""
    if path.exists():
        path.unlink()
    sizes = {1: leads, 2: max(leads // 10, 1), 3: max(leads // 100, 1)}
    with LeadStore(path).writing() as connection:
        connection.execute(
            "CREATE TEMP MACRO pick(choices, seed) AS choices[1 + (seed % len(choices))::BIGINT]"
        )
        first_id = 1
        for source_id, count in sizes.items():
            connection.execute(
                "INSERT INTO sources VALUES (?, ?, ?, ?)",
                [source_id, f"Bench source {source_id}", f"bench-{source_id}", INSERTED_AT],
            )
            for index in range(FIELD_COUNT):
                connection.execute(
                    "INSERT INTO field_definitions VALUES (?, ?, ?, ?, ?)",
                    [source_id, f"field_{index:02d}", f"Field {index}", field_type(index), index],
                )
            for index in range(ATTRIBUTE_COUNT):
                connection.execute(
                    "INSERT INTO attribute_definitions VALUES (?, ?, ?, ?)",
                    [source_id, f"attribute_{index:02d}", f"Attribute {index}", index],
                )
            _insert_leads(connection, source_id, first_id, count)
            first_id += count
        connection.execute("CHECKPOINT")
    return sizes


def _insert_leads(connection, source_id: int, first_id: int, count: int) -> None:
    params = {
        "first": first_id,
        "last": first_id + count,
        "source_id": source_id,
        "first_names": FIRST_NAMES,
        "last_names": LAST_NAMES,
        "statuses": STATUSES,
        "words": WORDS,
        "created_from": CREATED_FROM,
        "span": CREATED_SPAN_SECONDS,
        "inserted_at": INSERTED_AT,
    }
    connection.execute(
        """
        INSERT INTO leads
        SELECT
            i AS lead_id,
            $source_id,
            pick($first_names, hash(i, 'first')),
            pick($last_names, hash(i, 'last')),
            lower(pick($first_names, hash(i, 'first'))) || '.' || i
                || '@example.com',
            CASE hash(i, 'phone') % 3
                WHEN 0 THEN '+1 555-' || lpad((i % 10000)::VARCHAR, 4, '0')
                WHEN 1 THEN '0' || lpad((hash(i, 'p') % 1000000000)::VARCHAR, 9, '0')
                ELSE '(555) 01' || lpad((i % 100)::VARCHAR, 2, '0') || ' x' || (i % 97)
            END,
            (1 + i % 9999) || ' ' || pick($words, hash(i, 'street')) || ' St',
            pick($words, hash(i, 'city')) || 'ville',
            upper(substr(pick($words, hash(i, 'state')), 1, 2)),
            lpad((hash(i, 'zip') % 100000)::VARCHAR, 5, '0'),
            pick($statuses, hash(i, 'status')),
            $created_from + to_seconds((hash(i, 'created') % $span)::BIGINT),
            $created_from + to_seconds((hash(i, 'created') % $span)::BIGINT)
                + to_seconds((hash(i, 'updated') % 86400)::BIGINT),
            $inserted_at
        FROM range($first, $last) AS r(i)
        """,
        params,
    )
    connection.execute(
        """
        INSERT INTO lead_custom_values
        SELECT
            i,
            'field_' || lpad(k::VARCHAR, 2, '0'),
            CASE k % 5
                WHEN 0 THEN pick($words, hash(i, k)) || ', ' || (hash(i, k) % 1000)
                WHEN 1 THEN ((hash(i, k) % 10000000) / 100.0)::DECIMAL(12, 2)::VARCHAR
                WHEN 2 THEN strftime(DATE '2020-01-01' + (hash(i, k) % 2000)::INTEGER, '%Y-%m-%d')
                WHEN 3 THEN CASE WHEN hash(i, k) % 2 = 0 THEN 'true' ELSE 'false' END
                ELSE 'option ' || (hash(i, k) % 7)
            END
        FROM range($first, $last) AS r(i), range(30) AS f(k)
        WHERE hash(i, k, 'filled') % 10 < 7
        ORDER BY i, k
        """,
        {key: params[key] for key in ("first", "last", "words")},
    )
    connection.execute(
        """
        INSERT INTO lead_attributes
        SELECT
            i,
            'attribute_' || lpad(((hash(i, 'a') + n * 3) % 10)::VARCHAR, 2, '0'),
            pick($words, hash(i, n, 'v'))
        FROM range($first, $last) AS r(i), range(4) AS t(n)
        WHERE n < 2 + hash(i, 'tags') % 3
        ORDER BY i, n
        """,
        {key: params[key] for key in ("first", "last", "words")},
    )
