"""ncsim: Neural Collapse, tested.

Data flows one way: spec (ncsim.spec) -> run (ncsim.train) -> record (ncsim.store) -> claims (claims/)
and figures (ncsim.figures). The metric math lives in ncsim.metrics.
"""

__version__ = "0.1.0"
