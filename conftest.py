"""Root conftest: loads the claims suite's pytest plugin (ncsim/pytest_plugin)."""

pytest_plugins = ["ncsim.pytest_plugin"]
