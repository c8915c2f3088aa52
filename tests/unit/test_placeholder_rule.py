"""Allow-list placeholders that cannot collide (issue 18, class 1): the rule of
models/patterns.py, the CRD's CEL copy of it, and properties on generated patterns and
names: a value allowed through an accepted pattern names exactly one namespace (and one
ServiceAccount when the pattern has ``{serviceAccount}``), alone or next to the other
patterns of its list."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from agentcred.models.backend import parse_backend_spec
from agentcred.models.credential import parse_credential_spec
from agentcred.models.errors import UnsafePattern
from agentcred.models.patterns import (
    NAMESPACE,
    NAMESPACE_CHARS,
    SERVICE_ACCOUNT,
    SERVICE_ACCOUNT_CHARS,
    allow_list_problem,
    has_placeholder,
    overlap,
    pattern_problem,
)
from agentcred.models.policy import authorize, check_allow_lists, glob_matches

CRD = Path(__file__).resolve().parents[2] / "crds" / "credentialbackends.yaml"
PROPERTY = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure reproduces
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)

# The idioms the issue reproduced (and neighbours), each with a value two namespaces
# (or two ServiceAccounts of one namespace) are both allowed.
BAD: list[tuple[str, str, tuple[str, str], tuple[str, str]]] = [
    ("{namespace}-*", "team-a-prod-db", ("team-a", "x"), ("team-a-prod", "x")),
    (
        "database/creds/{namespace}-*",
        "database/creds/team-a-prod-ro",
        ("team-a", "x"),
        ("team-a-prod", "x"),
    ),
    ("*-{namespace}/*", "db-prod-team-a/x", ("team-a", "x"), ("prod-team-a", "x")),
    ("{namespace}-{serviceAccount}", "team-a-prod-x", ("team-a", "prod-x"), ("team-a-prod", "x")),
    ("{namespace}_{serviceAccount}.*", "a_b.c.d", ("a", "b"), ("a", "b.c")),
    ("*_{namespace}_*", "p_q_r_s", ("q", "x"), ("r", "x")),
    ("*_{namespace}_{serviceAccount}_*", "p_q_r_s_t", ("q", "r"), ("r", "s")),
    ("{namespace}*", "team-ab", ("team-a", "x"), ("team-ab", "x")),
    ("*{namespace}", "xteam-a", ("team-a", "x"), ("xteam-a", "x")),
    ("{namespace}{serviceAccount}", "abc", ("a", "bc"), ("ab", "c")),
    ("agents/{serviceAccount}", "agents/x", ("team-a", "x"), ("team-b", "x")),
]
GOOD = [
    "{namespace}/*",
    "secret/data/{namespace}/*",
    "projects/p/secrets/{namespace}_*",
    "database/creds/{namespace}_*",
    "database/creds/{namespace}_{serviceAccount}",
    "database/creds/{namespace}",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:{namespace}/*",
    "agents/{namespace}/{serviceAccount}",
    "{namespace}.{namespace}/x",
    "*_{namespace}/*_x",  # the stars are in different segments
    "*/{namespace}",
    "secret/data/shared/*",  # no placeholder: a deliberate shared grant
    "*",
]


def test_each_known_bad_idiom_is_a_real_collision_and_is_refused() -> None:
    for pattern, value, (ns1, sa1), (ns2, sa2) in BAD:
        assert glob_matches(pattern, value, namespace=ns1, service_account=sa1), pattern
        assert glob_matches(pattern, value, namespace=ns2, service_account=sa2), pattern
        assert pattern_problem(pattern) is not None, pattern
        assert pattern_problem(pattern, case_insensitive=True) is not None, pattern
        assert allow_list_problem((pattern,)) is not None, pattern


@pytest.mark.parametrize("pattern", GOOD)
def test_safe_idioms_are_accepted(pattern: str) -> None:
    assert pattern_problem(pattern) is None
    assert allow_list_problem((pattern,)) is None


def test_the_refusal_names_the_pattern_and_the_safe_forms() -> None:
    problem = pattern_problem("{namespace}-*")
    assert problem is not None
    assert "'{namespace}-*'" in problem and "'-'" in problem
    assert "'{namespace}/*'" in problem and "'database/creds/{namespace}_*'" in problem


def test_case_insensitive_backends_never_take_a_letter_as_a_delimiter() -> None:
    """Azure Key Vault and IAM compare names ignoring case: team-aXy is team-axy."""
    assert pattern_problem("{namespace}X*") is None  # Vault, GCP, Secrets Manager: case counts
    assert pattern_problem("{namespace}X*", case_insensitive=True) is not None
    assert pattern_problem("{namespace}", case_insensitive=True) is None
    assert pattern_problem("arn:aws:iam::1:role/{namespace}_*", case_insensitive=True) is None


def test_two_patterns_of_one_list_that_overlap_are_refused() -> None:
    """Each is fine alone; together x_team/q is namespace team's (first) and x's (second)."""
    first, second = "x_{namespace}/*", "{namespace}_*/*"
    assert pattern_problem(first) is None and pattern_problem(second) is None
    value = overlap(first, second)
    assert value is not None
    owners = {n for n, _ in parses(first, value)} | {n for n, _ in parses(second, value)}
    assert len(owners) == 2, (value, owners)
    problem = allow_list_problem((first, second))
    assert problem is not None and first in problem and second in problem
    assert allow_list_problem(("secret/data/{namespace}/*", "*/{namespace}")) is None
    assert allow_list_problem(("{namespace}/*", "*/{namespace}")) is not None
    assert allow_list_problem(("{namespace}/*", "{namespace}/x")) is None  # same namespace
    assert allow_list_problem(("{namespace}/*", "team-b/x")) is None  # literal: deliberate


# --- the operator: a backend written before the CRD's rule is unusable -------------------

BACKEND = {
    "namespaceSelector": {},
    "awsSecretsManager": {"region": "us-east-1", "allowedSecrets": ["{namespace}-*"]},
}


def test_authorize_refuses_every_request_through_an_ambiguous_backend() -> None:
    backend = parse_backend_spec(BACKEND)
    cred = parse_credential_spec(
        {"backendRef": {"name": "b"}, "awsSecretsManager": {"secretId": "team-a-prod-db"}}
    )
    with pytest.raises(UnsafePattern) as info:
        authorize(
            "b", backend, cred, namespace="team-a", namespace_labels={}, service_account="agent"
        )
    assert info.value.path == "spec.awsSecretsManager.allowedSecrets"
    assert "CredentialBackend b" in str(info.value) and "'{namespace}-*'" in str(info.value)


@pytest.mark.parametrize(
    ("block", "field"),
    [
        (
            {
                "vault": {
                    "address": "https://v",
                    "auth": {"token": {"secretRef": {"name": "t", "key": "k"}}},
                    "allowedPaths": ["secret/data/{namespace}/*"],
                    "allowedRoles": ["{namespace}-*"],
                }
            },
            "spec.vault.allowedRoles",
        ),
        (
            {
                "vault": {
                    "address": "https://v",
                    "auth": {"token": {"secretRef": {"name": "t", "key": "k"}}},
                    "allowedPaths": ["secret/data/{namespace}/*"],
                    "allowedWritePaths": ["pki/issue/{namespace}-*"],
                }
            },
            "spec.vault.allowedWritePaths",
        ),
        (
            {"awsSts": {"allowedRoleArns": ["arn:aws:iam::1:role/{namespace}X*"]}},
            "spec.awsSts.allowedRoleArns",
        ),
        (
            {"gcpSecretManager": {"allowedSecrets": ["projects/p/secrets/*{namespace}"]}},
            "spec.gcpSecretManager.allowedSecrets",
        ),
        (
            {"azureKeyVault": {"vaultUrl": "https://kv", "allowedSecrets": ["{namespace}-*"]}},
            "spec.azureKeyVault.allowedSecrets",
        ),
    ],
    ids=["vault-roles", "vault-write-paths", "sts", "gcp", "azure"],
)
def test_every_allow_list_field_is_checked(block: dict[str, Any], field: str) -> None:
    with pytest.raises(UnsafePattern) as info:
        check_allow_lists("b", parse_backend_spec({"namespaceSelector": {}, **block}))
    assert info.value.path == field
    if "azure" in field:
        assert "'{namespace}' as the whole name" in str(info.value)


# --- the CRD's CEL rules agree with the operator's rule ------------------------------------


@functools.cache
def crd_rules() -> dict[str, list[str]]:
    """Each allow-list field of the CRD: the CEL rules on its items."""
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]["properties"]
    found = {}
    for kind, fields in {
        "vault": ("allowedPaths", "allowedWritePaths", "allowedRoles"),
        "awsSecretsManager": ("allowedSecrets",),
        "awsSts": ("allowedRoleArns",),
        "gcpSecretManager": ("allowedSecrets",),
        "azureKeyVault": ("allowedSecrets",),
    }.items():
        for field in fields:
            items = spec[kind]["properties"][field]["items"]
            found[f"{kind}.{field}"] = [r["rule"] for r in items["x-kubernetes-validations"]]
    return found


CASE_INSENSITIVE = {"awsSts.allowedRoleArns", "azureKeyVault.allowedSecrets"}


def cel_accepts(rules: list[str], pattern: str) -> bool:
    """Evaluate the CRD's rules (only matches / contains / ! / || / && on self) in Python;
    CEL string literals unescape as Python's do for these."""
    env = {
        "_m": lambda regex: re.search(regex, pattern) is not None,
        "_c": lambda text: text in pattern,
    }
    for rule in rules:
        assert set(re.findall(r"self\.(\w+)", rule)) <= {"matches", "contains"}, rule
        py = rule.replace("!self.", "not self.").replace("||", " or ").replace("&&", " and ")
        py = py.replace("self.matches(", "_m(").replace("self.contains(", "_c(")
        if not eval(py, {"__builtins__": {}}, env):  # noqa: S307 (our own CRD's text)
            return False
    return True


def test_the_crd_refuses_each_bad_idiom_and_accepts_each_safe_one() -> None:
    for field, rules in crd_rules().items():
        for pattern, *_ in BAD:
            assert not cel_accepts(rules, pattern), (field, pattern)
        for pattern in GOOD:
            assert cel_accepts(rules, pattern) == (
                pattern_problem(pattern, case_insensitive=field in CASE_INSENSITIVE) is None
            ), (field, pattern)


# --- properties on generated patterns and names --------------------------------------------

# Patterns from segments (joined by "/") of pieces: literals, "*", and placeholders between
# delimiters that are mostly safe (so that many patterns pass the rule) and sometimes not.
LITERALS = ["a", "b", "0", "-", "_", ".", ":", "=", "X", "ab", "*", "*"]
DELIMITERS = ["_", "_", ":", ".", "=", "X", "", "-", "a", "*"]
placeholder = st.tuples(
    st.sampled_from(["", "*"]),
    st.sampled_from(DELIMITERS),
    st.sampled_from([NAMESPACE, SERVICE_ACCOUNT]),
    st.sampled_from(DELIMITERS),
    st.sampled_from(["", "*"]),
).map("".join)
segments = st.lists(st.one_of(st.sampled_from(LITERALS), placeholder), min_size=1, max_size=4).map(
    "".join
)
patterns = st.lists(segments, min_size=1, max_size=3).map("/".join)


# Mostly accepted patterns, for the property on pairs: placeholders between safe
# delimiters, a star on at most one side of each.
safe_placeholder = st.tuples(
    st.sampled_from(["", "*", "a"]),
    st.sampled_from(["_", ":", "="]),
    st.sampled_from([NAMESPACE, NAMESPACE, SERVICE_ACCOUNT]),
    st.sampled_from(["_", ":", "=", ""]),
).map(lambda t: "".join(t) if t[3] else "".join(t[:3]) + "/")
safe_segments = st.lists(
    st.one_of(st.sampled_from(["a", "b", "-", "_", ":", "X"]), safe_placeholder),
    min_size=1,
    max_size=3,
).map("".join)
safe_patterns = st.lists(safe_segments, min_size=1, max_size=3).map("".join)


label = r"[ab0]([-ab0]{0,5}[ab0])?"
namespaces = st.from_regex(rf"\A{label}\Z")
accounts = st.from_regex(rf"\A{label}(\.{label})?\Z")  # DNS subdomains: may hold "."
NAME_PIECES = ["a", "0", "-", "a-b", "a.b"]


class Pair(NamedTuple):
    namespace: str
    service_account: str


pairs = st.builds(Pair, namespaces, accounts)


def fold(pattern: str, case_insensitive: bool) -> str:
    if not case_insensitive:
        return pattern
    parts = re.split(r"(\{namespace\}|\{serviceAccount\})", pattern)
    return "".join(p if p in (NAMESPACE, SERVICE_ACCOUNT) else p.lower() for p in parts)


def parses(pattern: str, value: str) -> Iterator[tuple[str | None, str | None]]:
    """Every (namespace, ServiceAccount) a value can be read as through ``pattern``: an
    independent backtracking reading of the glob (placeholders as any run of their
    characters, the same one at each occurrence; ``*`` within a segment)."""
    parts = [p for p in re.split(r"(\{namespace\}|\{serviceAccount\}|\*)", pattern) if p]

    def walk(
        i: int, pos: int, ns: str | None, sa: str | None
    ) -> Iterator[tuple[str | None, str | None]]:
        if i == len(parts):
            if pos == len(value):
                yield ns, sa
            return
        part = parts[i]
        if part == "*":
            end = value.find("/", pos)
            for stop in range(pos, (len(value) if end < 0 else end) + 1):
                yield from walk(i + 1, stop, ns, sa)
        elif part in (NAMESPACE, SERVICE_ACCOUNT):
            chars = NAMESPACE_CHARS if part == NAMESPACE else SERVICE_ACCOUNT_CHARS
            stop = pos
            while stop < len(value) and value[stop] in chars:
                stop += 1
                run = value[pos:stop]
                if part == NAMESPACE and ns in (None, run):
                    yield from walk(i + 1, stop, run, sa)
                elif part == SERVICE_ACCOUNT and sa in (None, run):
                    yield from walk(i + 1, stop, ns, run)
        elif value.startswith(part, pos):
            yield from walk(i + 1, pos + len(part), ns, sa)

    yield from set(walk(0, 0, None, None))


@st.composite
def allowed_value(draw: st.DrawFn, pattern: str, owner: Pair) -> str:
    """A value ``pattern`` allows to ``owner``, its stars filled adversarially: from the
    pattern's own delimiters, name-like runs and the owner's names."""
    own = sorted(set(re.sub(r"\{namespace\}|\{serviceAccount\}|[*/]", "", pattern)))
    pool = [*own, *NAME_PIECES, owner.namespace, owner.service_account]
    fills = st.lists(st.sampled_from(pool), max_size=6)
    out = []
    for part in re.split(r"(\{namespace\}|\{serviceAccount\}|\*)", pattern):
        if part == NAMESPACE:
            out.append(owner.namespace)
        elif part == SERVICE_ACCOUNT:
            out.append(owner.service_account)
        elif part == "*":
            out.append("".join(draw(fills)))
        else:
            out.append(part)
    return "".join(out)


def readings_of_others(
    pattern: str, value: str, owner: Pair, *, case_insensitive: bool, compare_sa: bool
) -> list[tuple[str | None, str | None]]:
    """The readings of ``value`` through ``pattern`` that name someone else."""
    folded, seen = fold(pattern, case_insensitive), value.lower() if case_insensitive else value
    return [
        (ns, sa)
        for ns, sa in parses(folded, seen)
        if ns != owner.namespace or (compare_sa and sa != owner.service_account)
    ]


@PROPERTY
@given(pattern=patterns, owner=pairs, case_insensitive=st.booleans(), data=st.data())
def test_a_value_allowed_through_an_accepted_pattern_names_one_tenant(
    pattern: str, owner: Pair, case_insensitive: bool, data: st.DataObject
) -> None:
    if not has_placeholder(pattern) or pattern_problem(pattern, case_insensitive=case_insensitive):
        return
    value = data.draw(allowed_value(pattern, owner))
    assert glob_matches(
        pattern, value, namespace=owner.namespace, service_account=owner.service_account
    )
    others = readings_of_others(
        pattern,
        value,
        owner,
        case_insensitive=case_insensitive,
        compare_sa=SERVICE_ACCOUNT in pattern,
    )
    assert others == [], (pattern, value, owner)


@st.composite
def reading_pattern(draw: st.DrawFn, value: str) -> str:
    """A pattern that allows ``value``: each run of it kept, or read as ``*`` or as
    ``{namespace}`` / ``{serviceAccount}`` (so it may read another tenant's name in it)."""
    runs = re.findall(r"[a-z0-9-]+|.", value)
    picks: list[str] = []
    for run in runs:
        choices = ["keep"] if run == "/" else ["keep", "*"]
        if set(run) <= NAMESPACE_CHARS:
            choices += [NAMESPACE, NAMESPACE, NAMESPACE, SERVICE_ACCOUNT]
        picks.append(draw(st.sampled_from(choices)))
    out: list[str] = []
    for i, (run, pick) in enumerate(zip(runs, picks, strict=True)):
        next_to_placeholder = any(
            0 <= j < len(picks) and picks[j] in (NAMESPACE, SERVICE_ACCOUNT) for j in (i - 1, i + 1)
        )
        if pick == "keep" or (pick == "*" and next_to_placeholder):
            out.append(run)  # a placeholder's neighbours stay literal: its delimiters
        elif not out or out[-1] != pick:
            out.append(pick)  # equal picks in a row are one star
    return "".join(out)


def check_pair(first: str, second: str, value: str, owner: Pair, *, case_insensitive: bool) -> None:
    """If the list (first, second) is accepted, ``value`` (allowed to ``owner`` through
    ``first``) reads as nobody else's through ``second``."""
    if not (has_placeholder(first) and has_placeholder(second)):
        return
    if allow_list_problem((first, second), case_insensitive=case_insensitive):
        return
    both_sa = SERVICE_ACCOUNT in first and SERVICE_ACCOUNT in second
    others = readings_of_others(
        second, value, owner, case_insensitive=case_insensitive, compare_sa=both_sa
    )
    assert others == [], (first, second, value, owner)


@PROPERTY
@given(first=st.one_of(safe_patterns, safe_patterns, patterns), owner=pairs, data=st.data())
def test_a_second_pattern_read_from_a_value_never_hands_it_to_another_tenant(
    first: str, owner: Pair, data: st.DataObject
) -> None:
    """The adversary's way: take a value allowed to ``owner`` and write a second pattern
    that allows the same value, reading some other run of it as the namespace."""
    if not has_placeholder(first) or pattern_problem(first):
        return
    value = data.draw(allowed_value(first, owner))
    second = data.draw(reading_pattern(value))
    check_pair(first, second, value, owner, case_insensitive=False)


@pytest.mark.parametrize("pattern", [p for p, *_ in BAD if "{namespace}" in p])
def test_the_generators_find_the_collision_of_each_bad_idiom(pattern: str) -> None:
    """The properties above have teeth: without the rule, their search finds a value
    read as another tenant's for every known-bad idiom."""

    @st.composite
    def attempt(draw: st.DrawFn) -> tuple[Pair, str]:
        owner = draw(pairs)
        return owner, draw(allowed_value(pattern, owner))

    def collides(found: tuple[Pair, str]) -> bool:
        owner, value = found
        compare_sa = SERVICE_ACCOUNT in pattern
        return bool(
            readings_of_others(pattern, value, owner, case_insensitive=False, compare_sa=compare_sa)
        )

    owner, value = find(
        attempt(),
        collides,
        settings=settings(max_examples=2000, database=None, phases=[Phase.generate]),
    )
    assert glob_matches(
        pattern, value, namespace=owner.namespace, service_account=owner.service_account
    )


@PROPERTY
@given(pattern=patterns)
def test_the_crd_and_the_operator_apply_the_same_rule(pattern: str) -> None:
    for field, rules in crd_rules().items():
        expected = pattern_problem(pattern, case_insensitive=field in CASE_INSENSITIVE) is None
        assert cel_accepts(rules, pattern) == expected, (field, pattern)
