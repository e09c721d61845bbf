"""A decided check: its record (`Verdict`, with its JSON form) and its words (the failure message)."""

from ncsim.verdict.message import describe_rule, failure_message
from ncsim.verdict.record import PROPERTY, Verdict, from_property, jsonable, property_value

__all__ = ["PROPERTY", "Verdict", "describe_rule", "failure_message", "from_property", "jsonable", "property_value"]
