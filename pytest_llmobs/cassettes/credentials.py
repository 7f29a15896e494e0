"""Placeholder credentials for a replay that no request can leave.

The provider SDKs want a credential before anything is sent — `openai.OpenAI()`,
`AzureOpenAI()` and google-genai's `Client()` raise when they are built, anthropic before its
first request, botocore cannot sign — though a replayed call never needs one. So when the
session's record mode is `none` and `llm_allow_hosts` names only this machine, the plugin
sets a placeholder for each SDK whose own configuration supplies nothing (the variable
itself, another credential kind, a profile, a config file), and puts the environment back at
the end of the run.

The placeholders have the providers' key formats (and look generated), so the redactor
treats them as the secrets they stand in for wherever one could surface (cassettes, logs,
reports). A request about to
reach the network carrying one (a test whose marker records, or lets a host through) is
blocked by the cassette session and fails its test, naming the variable to set.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..intercept.exchange import Exchange


@dataclass(frozen=True)
class Placeholder:
    """What one SDK needs set, and what tells that the user configured it already."""

    sdk: str
    values: tuple[tuple[str, str], ...]  # (variable, placeholder)
    configured_by: tuple[str, ...]  # any of these set (non-empty): leave this SDK alone
    config_files: tuple[str, ...] = ()  # any of these existing (`~` = home): likewise


PLACEHOLDERS: tuple[Placeholder, ...] = (
    Placeholder(
        "openai",
        (("OPENAI_API_KEY", "sk-llmobsReplayPlaceholder0NotAKey000"),),
        ("OPENAI_API_KEY",),
    ),
    Placeholder(
        "openai (Azure)",
        (("AZURE_OPENAI_API_KEY", "sk-llmobsReplayPlaceholderAzure0NotAKey"),),
        ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN"),
    ),
    # anthropic 2.x also finds profiles and workload identity federation on its own.
    Placeholder(
        "anthropic",
        (("ANTHROPIC_API_KEY", "sk-ant-llmobsReplayPlaceholder0NotAKey"),),
        (
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "ANTHROPIC_PROFILE",
            "ANTHROPIC_CONFIG_DIR",
            "ANTHROPIC_IDENTITY_TOKEN",
            "ANTHROPIC_IDENTITY_TOKEN_FILE",
            "ANTHROPIC_FEDERATION_RULE_ID",
        ),
        ("~/.config/anthropic",),
    ),
    # Vertex AI authenticates with Google credentials, for which no placeholder exists.
    Placeholder(
        "google-genai",
        (("GEMINI_API_KEY", "AIzallmobsReplayPlaceholder0NotAKey0000"),),
        (
            "GOOGLE_API_KEY",
            "GEMINI_API_KEY",
            "GOOGLE_GENAI_USE_VERTEXAI",
            "GOOGLE_GENAI_USE_ENTERPRISE",
        ),
    ),
    # botocore signs every request. Environment variables come first in its credential
    # chain: with a profile, a credentials file, SSO or a role configured, set none.
    Placeholder(
        "boto3",
        (
            ("AWS_ACCESS_KEY_ID", "AKIALLMOBSREPLAY0000"),
            ("AWS_SECRET_ACCESS_KEY", "llmobsReplayPlaceholderNotASecretKey0000"),
        ),
        (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_CONFIG_FILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_BEARER_TOKEN_BEDROCK",
        ),
        ("~/.aws/credentials", "~/.aws/config"),
    ),
)
AWS = "boto3"


@dataclass
class ReplayCredentials:
    """The placeholders in this process's environment for this run."""

    environ: MutableMapping[str, str]
    active: dict[str, str] = field(default_factory=dict)  # placeholder → variable
    _previous: dict[str, str | None] = field(default_factory=dict)  # what we replaced

    @classmethod
    def supply(
        cls,
        environ: MutableMapping[str, str],
        *,
        skip: Sequence[str] = (),
        home: Path | None = None,
        placeholders: Sequence[Placeholder] = PLACEHOLDERS,
    ) -> ReplayCredentials:
        """Set the placeholders of every SDK (but those in `skip`) configured by nothing."""
        credentials = cls(environ)
        home = Path.home() if home is None else home
        for placeholder in placeholders:
            if placeholder.sdk in skip:
                continue
            mine = dict(placeholder.values)
            # An xdist worker inherits its controller's placeholders: they are still ours.
            inherited = all(environ.get(name) == value for name, value in mine.items())
            if not inherited and credentials._configured(placeholder, home):
                continue
            for name, value in mine.items():
                credentials.active[value] = name
                if environ.get(name) != value:
                    credentials._previous[name] = environ.get(name)
                    environ[name] = value
        return credentials

    def _configured(self, placeholder: Placeholder, home: Path) -> bool:
        if any(self.environ.get(name) for name in placeholder.configured_by):
            return True
        paths = (home / p[2:] if p.startswith("~/") else Path(p) for p in placeholder.config_files)
        return any(path.exists() for path in paths)

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys(self.active.values()))

    def restore(self) -> None:
        """Put back what was there before, unless something changed it since."""
        for name, before in self._previous.items():
            if self.environ.get(name) not in self.active:
                continue
            if before is None:
                del self.environ[name]
            else:
                self.environ[name] = before
        self._previous.clear()
        self.active.clear()

    def carried_by(self, exchange: Exchange) -> str | None:
        """The variable whose placeholder this request carries (headers, URL), if any."""
        if not self.active:
            return None
        texts = [exchange.url, *(value for _, value in exchange.request_headers)]
        for placeholder, name in self.active.items():
            if any(placeholder in text for text in texts):
                return name
        return None
