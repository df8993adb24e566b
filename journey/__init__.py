"""journey5a application layer: settings, metrics, CLI and local tooling around the 5A core."""
