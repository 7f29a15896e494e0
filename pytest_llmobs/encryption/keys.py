"""Key sources: where the data key that encrypts one artifact comes from.

Every encrypted file has its own random 256-bit data key; the key source wraps it (the
wrapped form goes into the file header) and unwraps it again to decrypt. That is the
envelope pattern: the key you manage never touches file content, and with a KMS it never
leaves the KMS at all.

The setting (the value of the environment variable named by `--llm-encrypt-key-env`) is

- a base64-encoded 32-byte key (`llmobs keygen` makes one): `EnvKeySource`, the data key is
  wrapped locally with AES-256-GCM;
- `aws-kms:KEY_ID` (key id, ARN or `alias/NAME`): `AwsKmsKeySource`, the data key comes
  from KMS `GenerateDataKey` and is unwrapped with KMS `Decrypt` (the `kms` extra);
- `SCHEME:REST` for a source registered under the `pytest_llmobs.key_sources` entry point
  group (`SCHEME = "package.module:factory"`, called with REST).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEFAULT_KEY_ENV = "LLMOBS_ENCRYPT_KEY"
ENTRY_POINT_GROUP = "pytest_llmobs.key_sources"
KEY_BYTES = 32
_WRAP_AAD = b"pytest-llmobs data key v1"
KMS_CONTEXT = {"purpose": "pytest-llmobs artifacts"}
INSTALL_HINT = "pip install 'pytest-llmobs[encrypt]'"


class KeySourceError(Exception):
    """A key that cannot be used: missing, malformed, wrong, or refused by the KMS."""


class KeySource(Protocol):
    """Makes and recovers data keys. `scheme` is written into every file header so
    `llmobs decrypt` knows which source can open it."""

    scheme: str

    def new_data_key(self) -> tuple[bytes, dict[str, str]]:
        """A fresh 32-byte data key and the header fields that let `data_key` recover it."""
        ...

    def data_key(self, header: Mapping[str, str]) -> bytes:
        """The data key described by `header`; `KeySourceError` if this source can't."""
        ...


def aesgcm(key: bytes) -> AESGCM:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise KeySourceError(
            f"encrypted artifacts need the cryptography package: {INSTALL_HINT}"
        ) from None
    return AESGCM(key)


def generate_key() -> str:
    """A new random key in the form `EnvKeySource` reads (base64, 32 bytes)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> str:
    """A fingerprint that tells keys apart in error messages without revealing them."""
    return hashlib.sha256(b"pytest-llmobs key id\x00" + key).hexdigest()[:16]


class EnvKeySource:
    """A local 256-bit key (from an environment variable) wrapping per-file data keys."""

    scheme = "env"

    def __init__(self, key: bytes, name: str = DEFAULT_KEY_ENV) -> None:
        if len(key) != KEY_BYTES:
            raise KeySourceError(f"{name}: the key must be {KEY_BYTES} bytes, got {len(key)}")
        self.name = name
        self.id = key_id(key)
        self._wrap = aesgcm(key)

    @classmethod
    def parse(cls, value: str, name: str = DEFAULT_KEY_ENV) -> EnvKeySource:
        text = value.strip()
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), altchars=_altchars(text))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise KeySourceError(
                f"{name}: expected a base64-encoded {KEY_BYTES}-byte key (make one with "
                "`llmobs keygen`) or aws-kms:KEY_ID"
            )
        return cls(key, name)

    def new_data_key(self) -> tuple[bytes, dict[str, str]]:
        data_key = secrets.token_bytes(KEY_BYTES)
        nonce = secrets.token_bytes(12)
        wrapped = nonce + self._wrap.encrypt(nonce, data_key, _WRAP_AAD)
        return data_key, {"source": self.scheme, "id": self.id, "wrapped": _b64(wrapped)}

    def data_key(self, header: Mapping[str, str]) -> bytes:
        from cryptography.exceptions import InvalidTag

        if header.get("id") != self.id:
            raise KeySourceError(
                f"wrong key: the file was encrypted with key {header.get('id')}, "
                f"{self.name} holds key {self.id}"
            )
        wrapped = _unb64(header.get("wrapped", ""))
        try:
            return self._wrap.decrypt(wrapped[:12], wrapped[12:], _WRAP_AAD)
        except InvalidTag:
            raise KeySourceError(f"wrong key: {self.name} cannot unwrap the data key") from None


class AwsKmsKeySource:
    """AWS KMS envelope encryption: `GenerateDataKey` gives the data key in plaintext (used,
    then dropped) and encrypted under the KMS key (stored in the header); `Decrypt` turns the
    latter back. Both bind an encryption context. The client is boto3's, configured the usual
    way (credentials, `AWS_REGION`, `AWS_ENDPOINT_URL_KMS`)."""

    scheme = "aws-kms"

    def __init__(self, key: str | None = None, client: Any = None) -> None:
        self.key = key
        self._client = client
        self._plain: dict[str, bytes] = {}  # wrapped → data key: one Decrypt per file per run

    def new_data_key(self) -> tuple[bytes, dict[str, str]]:
        if not self.key:
            raise KeySourceError("aws-kms: a KMS key id, ARN or alias/NAME is needed to encrypt")
        reply = self._call(
            "GenerateDataKey", KeyId=self.key, KeySpec="AES_256", EncryptionContext=KMS_CONTEXT
        )
        wrapped = _b64(reply["CiphertextBlob"])
        self._plain[wrapped] = reply["Plaintext"]
        header = {"source": self.scheme, "id": str(reply.get("KeyId") or self.key)}
        return reply["Plaintext"], header | {"wrapped": wrapped}

    def data_key(self, header: Mapping[str, str]) -> bytes:
        wrapped = header.get("wrapped", "")
        if wrapped not in self._plain:
            reply = self._call(
                "Decrypt",
                CiphertextBlob=_unb64(wrapped),
                EncryptionContext=KMS_CONTEXT,
                KeyId=header.get("id") or self.key,
            )
            self._plain[wrapped] = reply["Plaintext"]
        return self._plain[wrapped]

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        client = self._kms()
        method = {"GenerateDataKey": client.generate_data_key, "Decrypt": client.decrypt}
        try:
            reply: dict[str, Any] = method[operation](**params)
        except Exception as exc:  # botocore's ClientError / connection errors, kept short
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            raise KeySourceError(
                f"aws-kms {operation} ({params.get('KeyId')}): {code or type(exc).__name__}: {exc}"
            ) from None
        return reply

    def _kms(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise KeySourceError(
                    "aws-kms key source needs boto3: pip install 'pytest-llmobs[kms]'"
                ) from None
            region = _arn_region(self.key or "")
            try:
                self._client = boto3.client("kms", **({"region_name": region} if region else {}))
            except Exception as exc:  # no region, bad profile: botocore's own words
                raise KeySourceError(f"aws-kms: no KMS client: {exc}") from None
        return self._client


def key_source(value: str, name: str = DEFAULT_KEY_ENV) -> KeySource:
    """The key source a setting names (see the module docstring)."""
    scheme, sep, rest = value.strip().partition(":")
    if not sep:  # base64 has no ':'
        return EnvKeySource.parse(value, name)
    if scheme == AwsKmsKeySource.scheme:
        return AwsKmsKeySource(rest or None)
    factories = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if scheme in factories:
        factory: Callable[[str], KeySource] = factories[scheme].load()
        return factory(rest)
    raise KeySourceError(
        f"{name}: unknown key source {scheme!r} (built in: a base64 key, aws-kms:KEY_ID; "
        f"others register under the {ENTRY_POINT_GROUP!r} entry point group)"
    )


def key_source_from_env(name: str, environ: Mapping[str, str] | None = None) -> KeySource:
    """The key source in environment variable `name`; `KeySourceError` when unset."""
    value = (os.environ if environ is None else environ).get(name, "")
    if not value.strip():
        raise KeySourceError(
            f"environment variable {name} is not set: it must hold the artifact key "
            "(`llmobs keygen` makes one) or aws-kms:KEY_ID"
        )
    return key_source(value, name)


def _altchars(text: str) -> bytes | None:
    return b"-_" if "-" in text or "_" in text else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeySourceError("the file header's wrapped key is not base64") from None


def _arn_region(key: str) -> str | None:
    parts = key.split(":")
    return parts[3] if key.startswith("arn:") and len(parts) > 3 and parts[3] else None
