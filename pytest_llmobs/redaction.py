"""Secret redaction and opt-in PII masking.

One set of rules for everything that leaves a test: cassettes (both directions), spans, logs
and reports. `llmobs scan` reports exactly what these rules would change, so a file that
went through a `Redactor` scans clean.

Secrets become `REDACTED`. PII (only with `mask_pii=True`) becomes a stable placeholder such
as `<EMAIL_3f2a1c9b>`: a keyed BLAKE2b of the normalised value, so the same value masks the
same way at record time and at replay time, in every process, and masked cassettes still
match. Markers and placeholders are never matched again, so redaction is idempotent.

Everything works on raw text: a JSON body, an SSE stream or an NDJSON stream is redacted in
place, so every byte that is not a secret or PII stays as it was (framing, spacing, key
order) and nothing is parsed or re-serialised.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final
from urllib.parse import unquote_plus

__all__ = [
    "DEFAULT_SECRET_HEADERS",
    "DEFAULT_SECRET_QUERY_KEYS",
    "PLACEHOLDER_RE",
    "REDACTED",
    "Finding",
    "Redactor",
    "find_in_header",
    "find_secrets",
    "is_redacted",
    "is_secret_header",
]

REDACTED: Final = "<redacted>"
"""What a secret is replaced with: JSON-, YAML- and header-safe, and no credential format."""

PLACEHOLDER_RE: Final = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9a-f]{8}>")
"""A PII placeholder: `<KIND_xxxxxxxx>`, 8 lowercase hex digits."""

DEFAULT_SECRET_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "openai-organization",
        "openai-project",
        "cookie",
        "set-cookie",
        "x-amz-security-token",
        "ocp-apim-subscription-key",
        "private-token",  # GitLab
        "x-functions-key",  # Azure Functions
    }
)
"""Header names always redacted (case-insensitive). Names ending like a secret key
(`…-api-key`, `…-access-token`, `…-secret` …) are redacted too. Add your own with
`Redactor(extra_headers=…)`, which the plugin fills from `llm_redact_keys`."""

DEFAULT_SECRET_QUERY_KEYS: Final = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "api-key",
        "access_token",
        "token",
        "auth",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
        "client_secret",
        "password",
    }
)
"""Query parameter names whose values are redacted (case-insensitive)."""

# Names are compared lowercased with non-alphanumerics dropped: `apiKey`, `api_key`,
# `API-Key` are one name. A bare `token` only counts when its value looks generated:
# OpenAI, Gemini and Ollama logprobs use `token` for pieces of text.
_KEY_EXACT: Final = frozenset(
    {"token", "credential", "credentials", "cookie", "setcookie", "passphrase"}
    | {"openaiorganization", "openaiproject"}
)
_KEY_SUFFIXES: Final = (
    "apikey",
    "secret",
    "password",
    "passwd",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "apitoken",
    "sessiontoken",
    "securitytoken",
    "bearertoken",
    "idtoken",
    "privatekey",
    "secretkey",
    "secretaccesskey",
    "subscriptionkey",
    "authorization",
    "privatetoken",  # GitLab's `PRIVATE-TOKEN`
    "functionskey",  # Azure Functions' `x-functions-key`
)
# A JSON key ending in stem + one of these names no secret whatever comes before it (no
# secret name above ends so): `_stem_re` leaves these keys out.
_HARMLESS_ENDINGS: Final = {"token": ("s",)}
# In free text (`name: value`, `NAME=value`) short generic names are too common in prose.
_TEXT_EXACT: Final = frozenset(
    {"cookie", "setcookie", "passphrase", "openaiorganization", "openaiproject"}
)
# Every secret name (JSON key, YAML key, env var, query parameter) contains one of these;
# each is searched lowercased as `stem…` followed by `:` or `=`.
_FIELD_STEMS: Final = (
    "key",
    "secret",
    "pass",
    "token",
    "auth",
    "cookie",
    "organization",
    "project",
    "sig",
    "credential",
)
_FIELD_VALUE_RE: Final = re.compile(
    r"[ \t]*(?:\r?\n[ \t]*-[ \t]+|\[[ \t]*)?\\?[\"']?([A-Za-z0-9_\-./+=~%]{8,})"
)
_FIELD_TAIL: Final = rb"[a-z0-9_\-]*(\\?[\"']?)[ \t]*([:=])"
_QUERY_VALUE_RE: Final = re.compile(r"[^&\s\"'<>#\\]{6,}")
_JSON_VALUE_RE: Final = re.compile(r"[ \t\r\n]*(?:(\\?\")|(-?[0-9][0-9.eE+\-]*))")
_JSON_STR_BODY_RE: Final = re.compile(r"[^\"\\]*(?:\\.[^\"\\]*)*")
_JSON_STRING_RE: Final = re.compile(r"\"[^\"\\\n]*(?:\\.[^\"\\\n]*)*\"")
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_ALNUM: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_WORDISH: Final = _NAME_CHARS
_NON_ALNUM: Final = re.compile(r"[^a-z0-9]")

# -- vendor credential formats -------------------------------------------------------------
# Each regex starts with a literal so the engine can skip ahead at C speed; the left token
# boundary is checked in Python on the few hits (see `_starts_token`). A new format's
# literal goes into `_SECRET_HINTS` too.
_VENDOR: Final = (
    ("openai_key", re.compile(r"sk-(?:ant-|proj-|svcacct-|admin-)?[\w\-]{20,}", re.ASCII)),
    ("stripe_key", re.compile(r"k_live_(?<=[rs]k_live_)[A-Za-z0-9]{16,}")),
    ("aws_access_key_id", re.compile(r"A[KS]IA[A-Z0-9]{16}(?![A-Za-z0-9])")),
    ("google_api_key", re.compile(r"AIza[\w\-]{35}(?![\w\-])", re.ASCII)),
    ("github_token", re.compile(r"g(?:h[pousr]_[A-Za-z0-9]{36,}|ithub_pat_\w{22,})", re.ASCII)),
    ("slack_token", re.compile(r"xox[abposre]-[A-Za-z0-9\-]{10,}")),
    ("huggingface_token", re.compile(r"hf_[A-Za-z0-9]{30,}")),
    ("jwt", re.compile(r"eyJ[\w\-]{8,}\.eyJ[\w\-]{8,}\.[\w\-]*", re.ASCII)),
    (
        "private_key",
        re.compile(
            r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----"
            r"(?:.*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)",
            re.DOTALL,
        ),
    ),
)
_VENDOR_FULL: Final = re.compile(
    "|".join(
        f"(?P<{kind}>{rx.pattern.replace('k_live_(?<=[rs]k_live_)', '[rs]k_live_')})"
        for kind, rx in _VENDOR
    ),
    re.ASCII,
)
# The lowercased literal each vendor format and `_auth_spans` needs (see _may_hold_secret).
_SECRET_HINTS: Final = re.compile(
    rb"sk-|k_live_|a[ks]ia|aiza|g(?:h[pousr]_|ithub_pat_)|xox|hf_|eyj|-----begin|b(?:earer|asic)"
)
_HINTS_MAX_LEN: Final = 1024
_AUTH_VALUE_RE: Final = re.compile(r"[ \t]+([A-Za-z0-9\-._~+/]{8,}=*)")
_AUTH_SCHEMES: Final = frozenset(
    {"bearer", "basic", "digest", "negotiate", "token", "aws4-hmac-sha256", "hoba", "mutual"}
)
# A 40-character AWS secret access key is only recognisable next to its key id.
_AWS_SECRET_RE: Final = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_SECRET_WINDOW: Final = 200
_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9\-]*)[ \t]+(?=\S)")
_USERINFO_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^/?#@:]*):([^/?#@]+)@")

# -- PII -----------------------------------------------------------------------------------
# Every digit branch needs separators, a `+`/`00` prefix, a trunk `0`, or 13-19 digits with
# an issuer prefix and a Luhn checksum, so token counts, timestamps, ids and ISO dates never
# qualify. The first character is consumed before the boundary check so the engine can skip
# non-candidates quickly; `\n`-style escapes count as a boundary (JSON, YAML).
_LB: Final = r"(?:(?<![\w.+\-/].)|(?<=\\[nrtbf].))"
_PII_DIGIT_BRANCHES: Final = (
    ("phone_plus", r"(?<=\+)[1-9][0-9]{0,3}(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6}"),
    ("phone_intl", r"(?<=0)0[1-9][0-9]{0,3}(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6}"),
    ("phone_nanp", r"(?:(?<=\()[0-9]{3}\) ?|(?<=[0-9])[0-9]{2}[ .\-])[0-9]{3}[ .\-][0-9]{4}"),
    ("phone_trunk", r"(?<=0)[0-9]{1,4}(?P<tsep>[ .\-])[0-9]{2,8}(?:(?P=tsep)[0-9]{2,8}){0,4}"),
    (
        "card",
        r"(?<=[0-9])(?:[0-9]{3}(?P<csep>[ \-]?)[0-9]{4}(?P=csep)[0-9]{4}(?P=csep)[0-9]{1,7}"
        r"|[0-9]{3}(?P<asep>[ \-]?)[0-9]{6}(?P=asep)[0-9]{4,5})",
    ),
)
_PII_TAIL: Final = {
    "phone_nanp": r"(?!\w|[.\-][0-9])",
    "phone_trunk": r"(?!\w|[.\-][0-9])",
    "card": r"(?!\w|[.,][0-9])",
}
_PII_HEAD: Final = rf"[0-9(+]{_LB}"
_PII_DIGITS_RE: Final = re.compile(
    _PII_HEAD
    + "(?:"
    + "|".join(f"(?P<{k}>{rx}{_PII_TAIL.get(k, '')})" for k, rx in _PII_DIGIT_BRANCHES)
    + ")",
    re.ASCII,
)
# One branch each, to retry the other kinds where the first one failed its check.
_PII_SINGLE: Final = tuple(
    (k, re.compile(f"{_PII_HEAD}(?:{rx}{_PII_TAIL.get(k, '')})", re.ASCII))
    for k, rx in _PII_DIGIT_BRANCHES
)
_IBAN_RE: Final = re.compile(
    r"[A-Z](?:(?<![A-Za-z0-9].)|(?<=\\[nrtbf].))[A-Z][0-9]{2}(?: ?[A-Z0-9]{4}){2,7}"
    r"(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"
)
_EMAIL_LOCAL: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-"
)
_EMAIL_DOMAIN_RE: Final = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)
_PII_KIND: Final = {
    "phone_plus": "phone",
    "phone_intl": "phone",
    "phone_nanp": "phone",
    "phone_trunk": "phone",
}
_PROTECTED_RE: Final = re.compile(r"<redacted>|<[A-Z][A-Z0-9_]*_[0-9a-f]{8}>")
_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_MAX_PASSES: Final = 4
_CACHED_TEXT_LEN: Final = 256

Span = tuple[str, int, int]  # kind, start, end


@dataclass(frozen=True)
class Finding:
    """Something that looks like a credential or PII: `text[start:end]` is the value."""

    kind: str
    start: int
    end: int
    excerpt: str  # the value with its middle starred, safe to print


@dataclass(frozen=True, eq=False, kw_only=True)
class Redactor:
    """Redaction rules; immutable and thread-safe, build one per session.

    Secrets are always redacted. Built-in PII detectors (emails, phone numbers, Luhn-valid
    card numbers, mod-97-valid IBANs) run only with `mask_pii`. `pii_patterns` (name →
    regex; group 1 is masked when the regex has groups, else the whole match) and
    `pii_functions` (str → str, should be idempotent) are explicit requests and always run.
    `salt` keys the placeholder hash: use the same salt at record and at replay time.
    """

    extra_headers: Collection[str] = ()
    extra_query_keys: Collection[str] = ()
    extra_body_keys: Collection[str] = ()
    mask_pii: bool = False
    pii_patterns: Mapping[str, str | re.Pattern[str]] = field(default_factory=dict)
    pii_functions: Sequence[Callable[[str], str]] = ()
    salt: str = ""

    _headers: frozenset[str] = field(init=False, repr=False)
    _query_keys: frozenset[str] = field(init=False, repr=False)
    _body_keys: frozenset[str] = field(init=False, repr=False)
    _stem_res: tuple[re.Pattern[bytes], ...] = field(init=False, repr=False)
    _stem_hint: re.Pattern[bytes] = field(init=False, repr=False)
    _user: tuple[tuple[str, re.Pattern[str]], ...] = field(init=False, repr=False)
    _hash_key: bytes = field(init=False, repr=False)
    _key_cache: dict[str, bool] = field(init=False, repr=False)
    _url_cache: dict[str, str] = field(init=False, repr=False)
    _text_cache: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        user: list[tuple[str, re.Pattern[str]]] = []
        for name, pattern in self.pii_patterns.items():
            if not _NAME_RE.fullmatch(name):
                raise ValueError(
                    f"PII pattern name {name!r} must be letters, digits and _ "
                    "(it becomes the placeholder <NAME_xxxxxxxx>)"
                )
            try:
                compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
            except re.error as exc:
                raise ValueError(f"PII pattern {name!r} is not a valid regex: {exc}") from exc
            user.append((name.upper(), compiled))
        body_keys = frozenset(_norm(k) for k in self.extra_body_keys) - {""}
        # An extra key's last three letters serve as its stem.
        stems = set(_FIELD_STEMS) | {k[-3:] for k in body_keys}
        stem_res = tuple(_stem_re(st, body_keys) for st in sorted(stems))
        salt = self.salt.encode()
        init: dict[str, object] = {
            "_headers": DEFAULT_SECRET_HEADERS | {h.lower() for h in self.extra_headers},
            "_query_keys": DEFAULT_SECRET_QUERY_KEYS | {k.lower() for k in self.extra_query_keys},
            "_body_keys": body_keys,
            "_stem_res": stem_res,
            "_stem_hint": re.compile(b"|".join(re.escape(st.encode()) for st in sorted(stems))),
            "_user": tuple(user),
            "_hash_key": salt if len(salt) <= 64 else hashlib.blake2b(salt).digest(),
            "_key_cache": {},
            "_url_cache": {},
            "_text_cache": {},
            "pii_functions": tuple(self.pii_functions),
        }
        for name, value in init.items():
            object.__setattr__(self, name, value)

    # -- public API ------------------------------------------------------------------------
    def headers(self, items: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Redact header values; returns `items` itself when nothing changed."""
        out: list[tuple[str, str]] | None = None
        for i, (name, value) in enumerate(items):
            new = self.header_value(name, value)
            if new is not value:
                if out is None:
                    out = list(items)
                out[i] = (name, new)
        return items if out is None else out

    def header_value(self, name: str, value: str) -> str:
        """One header value (for dict-of-lists header shapes); `value` itself if unchanged."""
        if self.is_secret_header(name):
            return _secret_string(name, value)
        if name.lower() in ("location", "content-location", "referer"):
            return self.url(value)
        return self._secrets_only(value)

    def is_secret_header(self, name: str) -> bool:
        """Is every value of this header a secret (`authorization`, `x-api-key` …)?"""
        return name.lower() in self._headers or self.is_secret_key(name)

    def is_secret_key(self, name: str) -> bool:
        """Is this JSON key / header / parameter name one whose value is a secret?"""
        hit = self._key_cache.get(name)
        if hit is None:
            hit = _names_secret(_norm(name), self._body_keys)
            if len(self._key_cache) < 4096:  # names repeat; the bound guards odd documents
                self._key_cache[name] = hit
        return hit

    def url(self, url: str) -> str:
        """Redact secret query values, a URL password and secret-looking values in a URL."""
        done = self._url_cache.get(url)
        if done is None:
            done = self._url(url)
            if len(self._url_cache) < 1024:  # a run calls few endpoints, each many times
                self._url_cache[url] = done
        return url if done == url else done

    def _url(self, url: str) -> str:
        head, hash_sign, fragment = url.partition("#")
        base, qmark, query = head.partition("?")
        if "@" in base:
            base = _USERINFO_RE.sub(_redact_userinfo, base, count=1)
        base = self._secrets_only(base)
        if query:
            query = self._query(query)
        if fragment:  # OAuth implicit flows put tokens here
            fragment = self._query(fragment) if "=" in fragment else self._secrets_only(fragment)
        new = base + qmark + query + hash_sign + fragment
        return url if new == url else new

    def json(self, value: Any) -> Any:
        """Redact a decoded JSON value; returns `value` itself (not a copy) if unchanged.

        Values of secret keys become `REDACTED` (an auth scheme such as `Bearer` is kept,
        numbers become the string `REDACTED`); every other string gets the text rules.
        """
        return self._walk(value)

    def text(self, s: str) -> str:
        """Redact free text (logs, span attributes, prompts); `s` itself if unchanged."""
        if len(s) > _CACHED_TEXT_LEN or self.pii_functions:  # a user's function may not be pure
            return self._redact(s, json_mode=False)
        # Short values repeat in every span and call record (models, operations, hosts).
        done = self._text_cache.get(s)
        if done is None:
            done = self._redact(s, json_mode=False)
            if len(self._text_cache) >= 8192:  # ids never repeat: start over, not stop caching
                self._text_cache.clear()
            self._text_cache[s] = done
        return s if done == s else done

    def body(self, data: bytes, content_type: str | None = None) -> bytes:
        """Redact an HTTP body; never raises, returns `data` itself when nothing changed.

        JSON, SSE and NDJSON are redacted in place: only secret values (and PII) inside
        JSON strings change, every other byte (framing, spacing, key order) stays.
        Form bodies get the query rules. Other UTF-8 text gets the text rules; anything
        that does not decode (images, Bedrock event streams with their checksums, bodies
        still compressed) is left alone.
        """
        if not data:
            return data
        ct = (content_type or "").split(";", 1)[0].strip().lower()
        if "eventstream" in ct or ct.startswith(("image/", "audio/", "video/")):
            return data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
        try:
            if ct == "application/x-www-form-urlencoded":
                new = self._query(text)
            else:
                jsonish = "json" in ct or "event-stream" in ct or not ct
                new = self._redact(text, json_mode=jsonish)
        except Exception:  # a redactor that raises would lose the user's recording
            return data
        return data if new is text else new.encode("utf-8")

    def find(self, text: str, *, pii: bool | None = None) -> list[Finding]:
        """What the rules would replace in `text`, in order; `pii` defaults to `mask_pii`."""
        pii = self.mask_pii if pii is None else pii
        spans = self._secret_spans(text)
        if pii:
            extra = _pii_spans(text)
            if self._user:
                extra += self._user_spans(text)
                extra.sort(key=_span_order)
            spans += _drop_overlaps(extra, spans)
            spans.sort(key=_span_order)
        return [Finding(_refine(k, text[s:e]), s, e, _excerpt(k, text[s:e])) for k, s, e in spans]

    def find_header(self, name: str, value: str, *, pii: bool | None = None) -> list[Finding]:
        """What `header_value` would replace in one header's value (offsets into `value`):
        the whole value of a secret header (after an auth scheme), else what `find` sees."""
        if self.is_secret_header(name):
            if _secret_string(name, value) == value:
                return []
            start = 0
            scheme = _SCHEME_RE.match(value) if _norm(name).endswith("authorization") else None
            if scheme is not None:
                start = scheme.end()
            secret = value[start:]
            return [Finding("secret_header", start, len(value), _excerpt("secret_header", secret))]
        return self.find(value, pii=pii)

    def placeholder(self, kind: str, value: str) -> str:
        """The stable placeholder for `value` of PII kind `kind`: `<KIND_xxxxxxxx>`."""
        kind = _PII_KIND.get(kind, kind).upper()
        digest = hashlib.blake2b(
            f"{kind}\x00{_normalise(kind, value)}".encode(errors="surrogatepass"),
            digest_size=4,
            key=self._hash_key,
            person=b"pytest-llmobs",
        )
        return f"<{kind}_{digest.hexdigest()}>"

    # -- text --------------------------------------------------------------------------------
    def _redact(self, s: str, *, json_mode: bool) -> str:
        out = s
        # A replacement can create a token boundary (`…0958sk-…` once the phone is masked),
        # so repeat until nothing changes: the result then scans clean and is idempotent.
        for _ in range(_MAX_PASSES):
            new = self._pass(out, json_mode=json_mode)
            if new is out:
                break
            out = new
        for fn in self.pii_functions:
            out = fn(out)
        return s if out == s else out

    def _pass(self, s: str, *, json_mode: bool) -> str:
        out = s
        spans = _escape_safe(out, self._secret_spans(out))
        if spans:
            out = _replace(out, spans, _redaction)
        if self.mask_pii:
            spans = _escape_safe(out, _drop_overlaps(_pii_spans(out), _protected(out)))
            if spans and json_mode:
                spans = _inside_json_strings(out, spans)
            if spans:
                out = _replace(out, spans, self.placeholder)
        if self._user:
            spans = _escape_safe(out, _drop_overlaps(self._user_spans(out), _protected(out)))
            if spans:
                out = _replace(out, spans, self.placeholder)
        return s if out == s else out

    def _secrets_only(self, s: str) -> str:
        out = s
        for _ in range(_MAX_PASSES):
            spans = _escape_safe(out, self._secret_spans(out))
            if not spans:
                break
            out = _replace(out, spans, _redaction)
        return out

    def _secret_spans(self, text: str) -> list[Span]:
        low = text.encode("ascii", "replace").lower()  # index-aligned with `text`
        if not self._may_hold_secret(low):
            return []
        spans = _vendor_spans(text)
        spans += _auth_spans(text, low)
        spans += self._field_spans(text, low)
        if len(spans) > 1:
            spans.sort(key=_span_order)
            spans = _drop_overlaps(spans, [])
        return spans

    def _may_hold_secret(self, low: bytes) -> bool:
        """False when no rule below can match: most strings (ids, model names, prose) are
        cleared by a few substring searches instead of every regex. Each literal is one
        that a rule needs: a vendor prefix, an auth scheme, or a name stem plus `:`/`=`.
        Long texts (whole bodies) almost always hold one of them: they skip the check."""
        if len(low) > _HINTS_MAX_LEN or _SECRET_HINTS.search(low) is not None:
            return True
        return (b":" in low or b"=" in low) and self._stem_hint.search(low) is not None

    def _field_spans(self, text: str, low: bytes) -> list[Span]:
        """Values of secret names: JSON keys, `name: value`, `NAME=value`, `?key=value`."""
        spans: list[Span] = []
        seen: set[int] = set()
        for rx in self._stem_res:
            for m in rx.finditer(low):
                name_end = m.start(1)
                if name_end in seen:  # `secret_access_key` holds two stems
                    continue
                seen.add(name_end)
                ns = m.start()
                if (  # a JSON key starting with the stem (`"key":` of OTLP attributes …)
                    low[ns - 1 : ns] == b'"'
                    and m.group(2) == b":"
                    and m.group(1).endswith(b'"')
                    and not self.is_secret_key(text[ns:name_end])
                ):
                    continue  # what _json_value would decide, without the work
                floor = max(0, ns - 64)
                while ns > floor and text[ns - 1] in _NAME_CHARS:
                    ns -= 1
                if ns >= 1 and text[ns - 1] == "\\" and text[ns] in "nrtbf":
                    ns += 1  # `\napi_key: …`: the `n` belongs to the escape
                name = text[ns:name_end]
                sep = chr(low[m.start(2)])
                before = text[ns - 1] if ns else ""
                if before == '"' and sep == ":" and m.group(1).endswith(b'"'):
                    span = self._json_value(text, name, m.end(), escaped=m.group(1) == b'\\"')
                    if span is not None:
                        spans.append(span)
                    continue
                if before in ("?", "&", ";") and sep == "=":
                    if not (name.lower() in self._query_keys or self.is_secret_key(name)):
                        continue
                    v = _QUERY_VALUE_RE.match(text, m.end())
                    kind, vspan = "url_param", (v.span() if v else None)
                else:
                    norm = _norm(name)
                    if (
                        norm.endswith(_KEY_SUFFIXES)
                        or norm in _TEXT_EXACT
                        or norm in self._body_keys
                    ):
                        kind = "secret_field"
                    elif low[name_end : m.end()] == b"=" and norm.endswith(
                        ("signature", "credential")
                    ):  # SigV4 style `Credential=…`; not `credential = make()` in code
                        kind = "signature"
                    else:
                        continue
                    v = _FIELD_VALUE_RE.match(text, m.end())
                    vspan = v.span(1) if v else None
                if vspan is None or text[vspan[1] : vspan[1] + 1] == "(":
                    continue  # `api_key = load_key()` is code, not a value
                if _value_ok(text[vspan[0] : vspan[1]]):
                    spans.append((kind, *vspan))
        return spans

    def _json_value(self, text: str, name: str, pos: int, *, escaped: bool) -> Span | None:
        """The value of JSON key `name` starting at `pos` (after the colon), if secret."""
        if not self.is_secret_key(name) or (m := _JSON_VALUE_RE.match(text, pos)) is None:
            return None
        if m.group(2) is not None:  # a number under a secret key
            return ("secret_number", m.start(2), m.end(2))
        start = m.end()
        if escaped:  # JSON inside a JSON string: `{\"api_key\": \"…\"}`
            end = text.find('\\"', start)
        else:
            body = _JSON_STR_BODY_RE.match(text, start)
            end = body.end() if body is not None else start
        value = text[start:end]
        if end <= start or is_redacted(value):
            return None
        norm = _norm(name)
        if norm == "token" and not _tokenish(value):
            return None
        if norm.endswith("authorization") and (s := _SCHEME_RE.match(value)):
            start += s.end()
            if start >= end or is_redacted(text[start:end]):
                return None
        return ("secret_field", start, end)

    def _user_spans(self, s: str) -> list[Span]:
        spans: list[Span] = []
        for name, rx in self._user:
            for m in rx.finditer(s):
                start, end = m.span(1) if rx.groups else m.span()
                if end > start:
                    spans.append((name, start, end))
        spans.sort(key=_span_order)
        return _drop_overlaps(spans, [])

    # -- structures --------------------------------------------------------------------------
    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            out: dict[Any, Any] | None = None
            for key, item in value.items():
                if isinstance(key, str) and self.is_secret_key(key):
                    new = _secret_any(key, item)
                    if new is item:  # containers keep their shape; a short `token` is text
                        new = self._walk(item)
                else:
                    new = self._walk(item)
                if new is not item:
                    if out is None:
                        out = dict(value)
                    out[key] = new
            return value if out is None else out
        if isinstance(value, list | tuple):
            items: list[Any] | None = None
            for i, item in enumerate(value):
                new = self._walk(item)
                if new is not item:
                    if items is None:
                        items = list(value)
                    items[i] = new
            if items is None:
                return value
            return tuple(items) if isinstance(value, tuple) else items
        return value

    def _query(self, query: str) -> str:
        pieces = query.split("&")
        for i, piece in enumerate(pieces):
            name, eq, value = piece.partition("=")
            if not (eq and value):
                continue
            decoded = unquote_plus(name)
            secret = decoded.lower() in self._query_keys or self.is_secret_key(decoded)
            if secret and not is_redacted(value):
                pieces[i] = f"{name}={REDACTED}"
        new = self._secrets_only("&".join(pieces))
        return query if new == query else new


# -- secret helpers ---------------------------------------------------------------------------
def _stem_re(stem: str, body_keys: frozenset[str]) -> re.Pattern[bytes]:
    """`stem…` then `:` or `=`. JSON keys that name no secret whatever precedes the stem
    are left out by the regex itself: the bare stem (`"key":` of every OTLP attribute) and
    a count (`"input_tokens":`, `"max_tokens":` of every LLM body). Artifacts hold
    thousands of them, and each match costs Python work."""
    escaped = re.escape(stem.encode())
    # after the stem (a leading lookahead would cost the regex its literal-prefix scan)
    skip = b""
    if not _names_secret(_norm(stem), body_keys):
        skip += b'(?!(?<="' + escaped + rb')\\?"[ \t]*:)'
    for ending in _HARMLESS_ENDINGS.get(stem, ()):
        if not any(key.endswith(stem + ending) for key in body_keys):
            skip += b"(?!" + ending.encode() + rb'\\?"[ \t]*:)'
    return re.compile(escaped + skip + _FIELD_TAIL)


def _names_secret(norm: str, body_keys: frozenset[str]) -> bool:
    """Whether a normalised key name is one whose value is a secret."""
    return norm in _KEY_EXACT or norm.endswith(_KEY_SUFFIXES) or norm in body_keys


def _norm(key: str) -> str:
    return _NON_ALNUM.sub("", key.lower())


def _starts_token(text: str, i: int, bad: frozenset[str]) -> bool:
    """Does a token start at `i`? A JSON/YAML escape such as `\\n` right before counts."""
    if i == 0 or text[i - 1] not in bad:
        return True
    return text[i - 1] in "nrtbf" and i >= 2 and text[i - 2] == "\\"


def _randomish(s: str) -> bool:
    """Looks generated rather than written: digits with letters, or inner capitals."""
    digit = lower = upper = False
    for i, c in enumerate(s):
        if c.isdigit():
            digit = True
        elif c.islower():
            lower = True
        elif c.isupper() and i:
            upper = True
    return (digit and (lower or upper or s[:1].isupper())) or (lower and upper)


def _tokenish(value: str) -> bool:
    return len(value) >= 8 and " " not in value and _randomish(value)


def is_redacted(value: str) -> bool:
    """Is `value` already a marker or placeholder (possibly percent-encoded or quoted)?"""
    value = unquote_plus(value).strip("\"'")
    return value in (REDACTED, "REDACTED") or PLACEHOLDER_RE.fullmatch(value) is not None


def _value_ok(value: str) -> bool:
    return _randomish(value) and not is_redacted(value) and value.lower() not in _AUTH_SCHEMES


def _vendor_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    for kind, rx in _VENDOR:
        bad = _ALNUM if kind == "aws_access_key_id" else _WORDISH
        for m in rx.finditer(text):
            start, end = m.span()
            if kind == "stripe_key":
                start -= 1  # the literal starts after `sk`/`rk`, for speed
            value = text[start:end]
            found = kind
            if kind == "private_key":
                end = start + len(value.rstrip("\\ \t\r\n"))  # never split an escape
            elif not _starts_token(text, start, bad):
                continue
            elif kind == "openai_key":
                if not _randomish(value[3:]):  # prose like `sk-learn-style-…` is no key
                    continue
                if value.startswith("sk-ant-"):
                    found = "anthropic_key"
            spans.append((found, start, end))
            if kind == "aws_access_key_id":
                near = _AWS_SECRET_RE.search(text, end, min(len(text), end + _AWS_SECRET_WINDOW))
                if near is not None and _all_classes(near.group()):
                    spans.append(("aws_secret_key", near.start(), near.end()))
    return spans


def _all_classes(v: str) -> bool:
    return (
        any(c.isdigit() for c in v) and any(c.islower() for c in v) and any(c.isupper() for c in v)
    )


def _auth_spans(text: str, low: bytes) -> list[Span]:
    """`Bearer <token>` / `Basic <credentials>` anywhere; the scheme word stays."""
    spans: list[Span] = []
    for word in (b"bearer", b"basic"):
        i = low.find(word)
        while i != -1:
            m = _AUTH_VALUE_RE.match(text, i + len(word))
            if m is not None and _starts_token(text, i, _ALNUM) and _value_ok(m.group(1)):
                spans.append(("bearer_token", *m.span(1)))
            i = low.find(word, i + 1)
    return spans


def _secret_string(name: str, value: str) -> str:
    """A secret-named header or field: keep an auth scheme (`Bearer`), drop the rest."""
    if not value or is_redacted(value):
        return value
    norm = _norm(name)
    if norm == "token" and not _tokenish(value):
        return value
    if norm.endswith("authorization") and (m := _SCHEME_RE.match(value)):
        if is_redacted(value[m.end() :]):
            return value
        return f"{m.group(1)} {REDACTED}"
    return REDACTED


def _secret_any(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return _secret_string(key, value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return REDACTED
    return value  # None and booleans carry nothing


def _redaction(kind: str, _value: str) -> str:
    # A number under a secret JSON key becomes a string so the document stays valid JSON.
    return f'"{REDACTED}"' if kind == "secret_number" else REDACTED


def _redact_userinfo(m: re.Match[str]) -> str:
    return m.group(0) if is_redacted(m.group(2)) else f"{m.group(1)}:{REDACTED}@"


# -- PII helpers ------------------------------------------------------------------------------
def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(value: str) -> bool:
    compact = value.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digits_ok(kind: str, value: str, text: str, end: int) -> bool:
    digits = "".join(c for c in value if c.isdigit())
    if kind == "card":
        iin_ok = digits[0] in "3456" or "22" <= digits[:2] <= "27"
        return 13 <= len(digits) <= 19 and iin_ok and _luhn(digits)
    if kind in ("phone_plus", "phone_intl"):
        n = len(digits) - (2 if kind == "phone_intl" else 0)
        return 8 <= n <= 15 and not (end < len(text) and text[end].isdigit())
    if kind == "phone_nanp":
        return digits[0] in "23456789" and digits[3] in "23456789"
    if kind == "phone_trunk":
        return 9 <= len(digits) <= 12
    return False


def _pii_spans(text: str) -> list[Span]:
    spans = _email_spans(text) if "@" in text else []
    pos = 0
    search = _PII_DIGITS_RE.search
    while (m := search(text, pos)) is not None:
        start = m.start()
        kind = m.lastgroup or ""
        found = (kind, m.end()) if _digits_ok(kind, m.group(), text, m.end()) else None
        if found is None:  # another kind may fit here (a phone that is no card)
            for other, rx in _PII_SINGLE:
                o = rx.match(text, start) if other != kind else None
                if o is not None and _digits_ok(other, o.group(), text, o.end()):
                    found = (other, o.end())
                    break
        if found is None:
            pos = start + 1
            continue
        spans.append((_PII_KIND.get(found[0], found[0]), start, found[1]))
        pos = found[1]
    for m in _IBAN_RE.finditer(text):
        if _iban_ok(m.group()):
            spans.append(("iban", *m.span()))
    spans.sort(key=_span_order)
    return _drop_overlaps(spans, [])


def _email_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    at = text.find("@")
    while at != -1:
        start = at
        floor = max(0, at - 64)
        while start > floor and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        if start >= 1 and text[start - 1] == "\\" and text[start] in "nrtbf":
            start += 1
        local = text[start:at]
        domain = _EMAIL_DOMAIN_RE.match(text, at + 1)
        if (
            local
            and domain is not None
            and (start == 0 or text[start - 1] not in _EMAIL_LOCAL or start > floor)
            and not (local[0] == "." or local[-1] == "." or ".." in local)
        ):
            spans.append(("email", start, domain.end()))
            at = text.find("@", domain.end())
        else:
            at = text.find("@", at + 1)
    return spans


def _normalise(kind: str, value: str) -> str:
    """One value, one placeholder: formatting differences do not change the hash."""
    if kind == "EMAIL":
        return value.lower()
    if kind in ("PHONE", "CARD"):
        digits = "".join(c for c in value if c.isdigit())
        return digits[2:] if kind == "PHONE" and value.startswith("00") else digits
    if kind == "IBAN":
        return value.replace(" ", "").upper()
    return value


def _inside_json_strings(text: str, spans: list[Span]) -> list[Span]:
    """Drop PII spans outside JSON strings: a bare number must not become a placeholder."""
    if all(kind != "card" for kind, _, _ in spans):
        return spans  # only contiguous card digits can form a bare JSON number
    literals = [m.span() for m in _JSON_STRING_RE.finditer(text)]
    starts = [s for s, _ in literals]
    kept: list[Span] = []
    for span in spans:
        i = bisect.bisect_right(starts, span[1]) - 1
        if span[0] != "card" or (i >= 0 and literals[i][1] >= span[2]):
            kept.append(span)
    return kept


# -- spans --------------------------------------------------------------------------------
def _escape_safe(text: str, spans: list[Span]) -> list[Span]:
    """Never start or end a replacement inside a JSON/YAML escape such as `\\u00e9`."""
    if "\\" not in text:
        return spans
    out: list[Span] = []
    for kind, start, end in spans:
        slashes = 0
        while start - slashes > 0 and text[start - slashes - 1] == "\\":
            slashes += 1
        if slashes % 2:
            start += 5 if text[start] == "u" else 1
        while end > start and text[end - 1] == "\\":
            end -= 1
        if end > start:
            out.append((kind, start, end))
    return out


def _span_order(span: Span) -> tuple[int, int]:
    return span[1], -span[2]  # earliest first, the longest of those first


def _protected(text: str) -> list[Span]:
    if "<" not in text:
        return []
    return [("", m.start(), m.end()) for m in _PROTECTED_RE.finditer(text)]


def _drop_overlaps(spans: list[Span], taken: list[Span]) -> list[Span]:
    """Spans (sorted) overlapping neither `taken` (sorted) nor an earlier kept span."""
    if not taken and all(spans[i][2] <= spans[i + 1][1] for i in range(len(spans) - 1)):
        return spans
    starts = [s for _, s, _ in taken]
    kept: list[Span] = []
    last_end = -1
    for span in spans:
        _, start, end = span
        if start < last_end:
            continue
        i = bisect.bisect_right(starts, start) - 1
        if (i >= 0 and taken[i][2] > start) or (i + 1 < len(taken) and taken[i + 1][1] < end):
            continue
        kept.append(span)
        last_end = end
    return kept


def _replace(text: str, spans: list[Span], fn: Callable[[str, str], str]) -> str:
    out: list[str] = []
    pos = 0
    for kind, start, end in spans:
        out.append(text[pos:start])
        out.append(fn(kind, text[start:end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _refine(kind: str, value: str) -> str:
    """Name a value found by its context (`Bearer …`, `api_key: …`) after its format."""
    if kind == "secret_number":
        return "secret_field"
    if kind in ("bearer_token", "url_param", "signature", "secret_field"):
        m = _VENDOR_FULL.fullmatch(value)
        if m is not None and m.lastgroup:
            return "anthropic_key" if value.startswith("sk-ant-") else m.lastgroup
    return kind


def _excerpt(kind: str, value: str) -> str:
    if kind == "private_key":
        return value.split("-----", 2)[1].join(("-----", "-----…"))
    value = value.replace("\n", " ")
    n = len(value)
    if n <= 6:
        return "*" * n
    head = min(4, n // 4)
    tail = min(2, n // 6)
    return value[:head] + "*" * min(n - head - tail, 12) + (value[-tail:] if tail else "")


@cache
def _default() -> Redactor:
    return Redactor()


def find_secrets(text: str, *, pii: bool) -> list[Finding]:
    """Credentials (and with `pii`, emails, phones, cards, IBANs) in `text`, in order."""
    return _default().find(text, pii=pii)


def is_secret_header(name: str) -> bool:
    """Whether the default rules redact every value of header `name`."""
    return _default().is_secret_header(name)


def find_in_header(name: str, value: str, *, pii: bool) -> list[Finding]:
    """`find_secrets` for one header value, which the header rules also apply to."""
    return _default().find_header(name, value, pii=pii)
