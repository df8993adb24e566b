"""The identity topic's records: links, merges and forwarded events between partitions (DESIGN.md §1c).

A person's ids can live on two partitions: an anonymous id's events on the anonymous id's, the
customer's on the customer's. The path moves what a link does between them over one topic,
co-partitioned with the inputs, read by the path like an input but not aligned (merges are
order-free), and by the sink (each merge is a row of `customer_identities`):

    customer's partition            anonymous id's partition
    event with both ids, identify ─ link ──>  first link applied wins: the anonymous person's rows
                                              are retracted, its journey goes back as
    merge into the customer <──── merge ───  (journey entries; empty when it had none)
    apply to the customer   <──── event ───  a later event of the linked anonymous id

Values are JSON (links and merges) or the event itself (forwarded events); the header
`journey.identity` says which, `journey.person` the customer a forwarded event belongs to.
Records are stamped with the writer's epoch and partition like rekeyed events (streams/fencing.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from fivea.identity import IdLink
from fivea.merge import Entry, Trigger
from fivea.stages import Stage
from schemas import AnyEvent

KIND_HEADER = "journey.identity"
PERSON_HEADER = "journey.person"


class Message(NamedTuple):
    kind: str  # "link", "merge" or "event"
    link: IdLink | None = None
    entries: tuple[Entry, ...] = ()
    event: AnyEvent | None = None
    person: str = ""


class Outgoing(NamedTuple):
    """A record to write: the id whose partition it goes to (also its key), value, headers."""

    routing_id: str
    value: bytes
    headers: list[tuple[str, bytes]]


def _link_doc(link: IdLink) -> dict[str, Any]:
    return {"brand": link.brand, "anonymous_id": link.anonymous_id, "customer_id": link.customer_id,
            "at_us": link.at_us, "event_id": link.event_id}


def link_record(link: IdLink) -> Outgoing:
    return Outgoing(link.anonymous_id, orjson.dumps(_link_doc(link)), [(KIND_HEADER, b"link")])


def merge_record(link: IdLink, entries: tuple[Entry, ...]) -> Outgoing:
    doc = _link_doc(link)
    doc["entries"] = [[e.at_us, e.event_id, int(e.stage), *e.trigger] for e in entries]
    return Outgoing(link.customer_id, orjson.dumps(doc), [(KIND_HEADER, b"merge")])


def event_record(event: AnyEvent, person: str) -> Outgoing:
    return Outgoing(person, event.model_dump_json(exclude_none=True).encode(),
                    [(KIND_HEADER, b"event"), (PERSON_HEADER, person.encode())])


def kind_of(headers: Any) -> tuple[str, str]:
    kind = person = ""
    for name, value in headers or ():
        if name == KIND_HEADER:
            kind = value.decode()
        elif name == PERSON_HEADER:
            person = value.decode()
    return kind, person


def read_link(doc: dict[str, Any]) -> IdLink:
    return IdLink(doc["brand"], doc["anonymous_id"], doc["customer_id"], int(doc["at_us"]), doc["event_id"])


def read_entries(doc: dict[str, Any]) -> tuple[Entry, ...]:
    return tuple(Entry(at_us, event_id, Stage(stage), 0, Trigger(*trigger))
                 for at_us, event_id, stage, *trigger in doc.get("entries", ()))


def read_message(record: Any, decode_event: Any) -> Message | str:
    """A record of the identity topic as a message, or why it is none (fences are handled before)."""
    kind, person = kind_of(record.headers)
    try:
        if kind == "event":
            event = decode_event(record.value)
            if isinstance(event, str):
                return event
            return Message("event", event=event, person=person)
        doc = orjson.loads(record.value)
        if kind == "link":
            return Message("link", link=read_link(doc))
        if kind == "merge":
            return Message("merge", link=read_link(doc), entries=read_entries(doc))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return f"unreadable {kind or 'identity'} record: {exc}"
    return f"unknown identity record kind {kind!r}"
