"""Generate the JSON Schema files in `schemas/jsonschema/` from the models (the models are the source)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas.events import EVENT_ADAPTER, ClickstreamEvent, IdentifyEvent, PurchaseEvent, ShareEvent
from schemas.transition import Transition

SCHEMA_DIR = Path(__file__).parent / "jsonschema"


def rendered_schemas() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    schemas = {
        "event.schema.json": EVENT_ADAPTER.json_schema(),
        "clickstream.schema.json": ClickstreamEvent.model_json_schema(),
        "purchase.schema.json": PurchaseEvent.model_json_schema(),
        "share.schema.json": ShareEvent.model_json_schema(),
        "identify.schema.json": IdentifyEvent.model_json_schema(),
        "transition.schema.json": Transition.model_json_schema(),
    }
    return {name: json.dumps(schema, indent=2, sort_keys=True) + "\n" for name, schema in schemas.items()}


def main() -> int:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in rendered_schemas().items():
        (SCHEMA_DIR / name).write_text(text)
        print(f"wrote {SCHEMA_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
