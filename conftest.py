"""Root conftest. The claims suite's pytest plugin (ncsim/pytest_plugin) is not loaded here: installing
ncsim registers it with pytest through its `pytest11` entry point (pyproject.toml), for this repository
and for any directory of claim files alike."""
