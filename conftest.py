"""Root conftest: loads the project's pytest plugins (fixtures/)."""

pytest_plugins = ["fixtures.claims", "fixtures.runs", "fixtures.report"]
