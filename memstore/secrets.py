"""Secrets in text, found by well-known patterns and replaced with `[redacted:<kind>]`.

Once a secret is committed and pushed it cannot be taken back, so text is redacted before it
is written: `mem add`, `mem import`, the MCP tools and captured agent sessions all pass through
`redact`. The patterns are the token formats that providers publish and that secret scanners
match, vendored from gitleaks' default rules (MIT licence, github.com/gitleaks/gitleaks,
cmd/generate/config/rules/*.go; the rule ids are named beside each pattern) and narrowed where
gitleaks relies on an entropy check that is not repeated here. Rules without a fixed prefix
(`.env` lines, passwords in URLs, `Authorization:` headers) are memstore's own.

Only formats with a recognisable shape are matched: there is no entropy rule, so commit hashes,
UUIDs, base64 in prose and memory ids are left alone. A secret that looks like ordinary text
(a password in a sentence) is not found; `docs/agents.md` says so.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MARKER = "[redacted:{kind}]"
_PLACEHOLDER_WORDS = frozenset(
    {"password", "passwd", "pass", "secret", "token", "changeme", "none", "null", "nil"}
    | {"true", "false", "example", "redacted", "xxx", "your-password", "your_password"}
)


@dataclass(frozen=True)
class Rule:
    """One kind of secret: the pattern, and which group of it is the secret (0: all of it)."""

    kind: str
    pattern: re.Pattern[str]
    keywords: tuple[str, ...]  # the pattern runs only on text holding one of these
    group: int | str = 0
    keep: Callable[[re.Match[str]], bool] | None = None  # True: not a secret after all
    lower: bool = False  # look for the keywords in the lowercased text


@dataclass
class Redacted:
    """Text with its secrets replaced, and how many of each kind were replaced."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _placeholder(value: str) -> bool:
    """A value that stands for a secret without being one: `${TOKEN}`, `<password>`, `****`."""
    text = value.strip().strip("\"'")
    if not text or text[0] in "$<{%*[" or text.startswith("..."):
        return True
    if len(set(text.lower())) == 1:  # xxxx, 0000, ****
        return True
    lowered = text.lower()
    return lowered in _PLACEHOLDER_WORDS or lowered.startswith(("your-", "your_", "my-", "my_"))


def _keep_url_password(match: re.Match[str]) -> bool:
    return _placeholder(match.group("secret"))


def _keep_assignment(match: re.Match[str]) -> bool:
    """An assignment that is code or a placeholder, not a secret's value."""
    value = match.group("secret")
    if _placeholder(value):
        return True
    quoted = value[:1] in "\"'"
    if quoted:
        return False
    if any(char in value for char in "()[]"):  # os.environ["X"], get_token()
        return True
    if re.fullmatch(r"[A-Za-z_]\w*(?:\.\w+)+", value):  # settings.SECRET_KEY
        return True
    # `token = token`, `api_key = key` in code: a lowercase name given a bare identifier.
    name = match.group("name")
    return name != name.upper() and bool(re.fullmatch(r"[A-Za-z_]\w*", value))


def _compile(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_ENV_NAME = (
    r"(?P<name>[A-Za-z0-9_.-]*?(?:SECRET|PASSWORD|PASSWD|PASSPHRASE|TOKEN"
    r"|(?:API|ACCESS|SECRET|PRIVATE|AUTH|MASTER|ENCRYPTION|SIGNING|CLIENT)[_.-]?KEY))"
)
_VALUE = r"(?P<secret>\"[^\"\n]*\"|'[^'\n]*'|[^\s#'\"]+)"

# In order: a private key block first (it may hold anything), then tokens with a prefix, then
# the rules that take a value from its context. A marker put in by one rule matches no other.
RULES: tuple[Rule, ...] = (
    # gitleaks private-key, also without its END line (a cut log) and with \n escapes.
    Rule(
        "private-key",
        _compile(
            r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]*?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
            r"|(?:(?:\s|\\n)+[A-Za-z0-9+/=:-]{16,})*)"
        ),
        ("PRIVATE KEY",),
    ),
    # gitleaks age-secret-key
    Rule(
        "age-secret-key",
        _compile(r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
        ("AGE-SECRET-KEY-1",),
    ),
    # gitleaks github-pat, github-oauth, github-app-token, github-refresh-token
    Rule(
        "github-token",
        _compile(r"\bgh[pousr]_[0-9A-Za-z]{36}\b"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    ),
    # gitleaks github-fine-grained-pat
    Rule("github-token", _compile(r"\bgithub_pat_\w{82}\b"), ("github_pat_",)),
    # gitleaks gitlab-pat, gitlab-deploy-token, gitlab-runner-…, gitlab-ptt, …
    Rule(
        "gitlab-token",
        _compile(r"\bgl(?:pat|dt|rt|ptt|cbt|ft|imt|oas|soat|agent|ffct)-[0-9A-Za-z_.-]{20,}"),
        ("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glft-", "glimt-", "gloas-", "glsoat-")
        + ("glagent-", "glffct-"),
    ),
    # gitleaks slack-bot-token, slack-user-token, slack-legacy-*, slack-app-token, webhooks
    Rule("slack-token", _compile(r"\bxox[abposre]-[0-9]+-[0-9A-Za-z-]{8,}"), ("xox",)),
    Rule(
        "slack-token",
        _compile(r"\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+", re.IGNORECASE),
        ("xapp-",),
        lower=True,
    ),
    Rule(
        "slack-webhook",
        _compile(r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}"),
        ("hooks.slack.com",),
    ),
    # gitleaks aws-access-token (its allowlist: AWS's documented ...EXAMPLE keys)
    Rule(
        "aws-access-key",
        _compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
        ("A3T", "AKIA", "ASIA", "ABIA", "ACCA"),
        keep=lambda m: m.group(0).endswith("EXAMPLE"),
    ),
    # AWS secret access keys have no prefix: only next to their name (aws CLI files and output).
    Rule(
        "aws-secret-key",
        _compile(
            r"(?i)(?:aws_?)?secret_?access_?key[\"']?\s*[:=]\s*[\"']?"
            r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        ("access",),
        group="secret",
        keep=lambda m: "EXAMPLE" in m.group("secret"),
        lower=True,
    ),
    # gitleaks gcp-api-key, and Google OAuth access tokens
    Rule("google-api-key", _compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"), ("AIza",)),
    Rule("google-oauth-token", _compile(r"\bya29\.[0-9A-Za-z_-]{20,}"), ("ya29.",)),
    # gitleaks anthropic-api-key, anthropic-admin-api-key, anthropic-oauth-token (any sk-ant-)
    Rule("anthropic-api-key", _compile(r"\bsk-ant-[a-z]+\d*-[A-Za-z0-9_-]{20,}"), ("sk-ant-",)),
    # gitleaks openai-api-key, widened to any `sk-` key of 20+ letters and digits (OpenAI,
    # DeepSeek, OpenRouter, … all use this shape); it must mix letters and digits.
    Rule(
        "openai-api-key",
        _compile(r"\bsk-(?:proj-|svcacct-|admin-|or-v1-)?[A-Za-z0-9_-]{20,}"),
        ("sk-",),
        keep=lambda m: (
            not (re.search(r"\d", m.group(0)[3:]) and re.search("[A-Za-z]", m.group(0)[3:]))
        ),
    ),
    # gitleaks stripe-access-token (secret and restricted keys; publishable pk_ keys are public)
    Rule(
        "stripe-key",
        _compile(r"\b(?:sk|rk)_(?:test|live|prod)_[0-9A-Za-z]{10,99}\b"),
        ("sk_", "rk_"),
    ),
    # gitleaks npm-access-token, pypi-upload-token
    Rule("npm-token", _compile(r"\bnpm_[A-Za-z0-9]{36}\b"), ("npm_",)),
    Rule("pypi-token", _compile(r"\bpypi-AgE[A-Za-z0-9_-]{50,}"), ("pypi-AgE",)),
    # gitleaks jwt: three base64url parts, the first two JSON objects (`ey` is `{"`).
    Rule(
        "jwt",
        _compile(r"\bey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}={0,2}"),
        (".ey",),
    ),
    # scheme://user:password@host
    Rule(
        "url-password",
        _compile(
            r"(?i)\b[a-z][a-z0-9+.-]{1,20}://[^\s:/?#@\[\]]+:(?P<secret>[^\s/?#@]+)@[^\s/?#@]"
        ),
        ("://",),
        group="secret",
        keep=_keep_url_password,
    ),
    # Authorization: Bearer <token> (curl -H, HTTP dumps)
    Rule(
        "bearer-token",
        _compile(
            r"(?i)\bauthorization:\s*(?:bearer|basic|token)\s+(?P<secret>[A-Za-z0-9._~+/=-]{16,})"
        ),
        ("authorization",),
        group="secret",
        lower=True,
    ),
    # --password=…, --token=… on a command line
    Rule(
        "password-option",
        _compile(r"(?i)(?<![\w-])--?(?P<name>password|passwd|token|api-key|secret)=" + _VALUE),
        ("-password=", "-passwd=", "-token=", "-api-key=", "-secret="),
        group="secret",
        keep=_keep_assignment,
        lower=True,
    ),
    # .env and config lines: NAME_SECRET=…, PASSWORD=…, API_KEY=… (also `export`, spaces, quotes)
    Rule(
        "env-secret",
        _compile(r"(?im)^[ \t]*(?:export[ \t]+)?" + _ENV_NAME + r"[ \t]*=[ \t]*" + _VALUE),
        ("secret", "pass", "token", "key"),
        group="secret",
        keep=_keep_assignment,
        lower=True,
    ),
)


def redact(text: str) -> Redacted:
    """Replace every secret in text with `[redacted:<kind>]`; count them by kind."""
    counts: Counter[str] = Counter()
    lowered = text.lower()
    for rule in RULES:
        # A substring test is a hundred times cheaper than a search by a pattern that starts
        # with \b: most texts hold no keyword, and no pattern runs on them (gitleaks does this).
        haystack = lowered if rule.lower else text
        if not any(keyword in haystack for keyword in rule.keywords):
            continue

        def replace(match: re.Match[str], rule: Rule = rule) -> str:
            if rule.keep is not None and rule.keep(match):
                return match.group(0)
            counts[rule.kind] += 1
            whole = match.group(0)
            start, end = match.span(rule.group)
            offset = match.start(0)
            return whole[: start - offset] + MARKER.format(kind=rule.kind) + whole[end - offset :]

        replaced = rule.pattern.sub(replace, text)
        if replaced != text:
            text, lowered = replaced, replaced.lower()
    return Redacted(text, counts)


def redact_value(value: Any, counts: Counter[str]) -> Any:
    """A front-matter value with the secrets in its text redacted (lists and mappings too)."""
    if isinstance(value, str):
        result = redact(value)
        counts.update(result.counts)
        return result.text
    if isinstance(value, list):
        return [redact_value(item, counts) for item in value]
    if isinstance(value, dict):
        return {key: redact_value(item, counts) for key, item in value.items()}
    return value


def describe(counts: Counter[str]) -> str:
    """'3 secrets (2 github-token, 1 url-password)'."""
    total = sum(counts.values())
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=_by_count))
    return f"{total} secret{'' if total == 1 else 's'} ({kinds})"


def warning(counts: Counter[str]) -> str:
    """The one line that tells the user what was redacted and how to keep it."""
    return f"redacted {describe(counts)} before saving; --allow-secrets keeps them"


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]
