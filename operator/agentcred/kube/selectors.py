"""A task's ``podSelector`` as the label-selector string the list and watch APIs take.

The API server does the filtering, so the operator lists or watches only the pods a
task selects. An empty selector is the empty string, which selects everything, as
Kubernetes defines it; a missing selector (None) is the caller's to handle.
"""

from __future__ import annotations

from agentcred.models.task import LabelSelector, LabelSelectorRequirement


def selector_string(selector: LabelSelector) -> str:
    """``{matchLabels: {a: b}, matchExpressions: [{key: c, operator: Exists}]}`` → ``a=b,c``."""
    terms = [f"{key}={value}" for key, value in sorted((selector.match_labels or {}).items())]
    terms += [_requirement(req) for req in selector.match_expressions]
    return ",".join(terms)


def _requirement(req: LabelSelectorRequirement) -> str:
    values = ",".join(req.values)
    match req.operator:
        case "In":
            return f"{req.key} in ({values})"
        case "NotIn":
            return f"{req.key} notin ({values})"
        case "Exists":
            return req.key
        case "DoesNotExist":
            return f"!{req.key}"
    raise ValueError(f"unknown label selector operator {req.operator!r}")
