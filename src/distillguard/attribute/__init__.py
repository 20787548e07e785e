"""Attribute campaigns to known actors from STIX 2.1 threat intel, and share them as STIX 2.1."""

from distillguard.attribute.intel import Intel, Rule, load_intel
from distillguard.attribute.match import UNKNOWN_ACTOR, Attribution, attribute
from distillguard.attribute.stix_export import export_stix

__all__ = ["UNKNOWN_ACTOR", "Attribution", "Intel", "Rule", "attribute", "export_stix", "load_intel"]
