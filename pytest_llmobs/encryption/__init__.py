"""Encrypted artifacts: the files that hold prompt content, written as `FILE.enc`.

`keys` turns a key setting into a `KeySource` (a local key from an environment variable,
AWS KMS, or your own through the `pytest_llmobs.key_sources` entry point group); `stream`
is the file format (AES-256-GCM over 64 KiB chunks, the data key wrapped in the header) and
the atomic writer that never lets plaintext reach the disk; `cli` adds `llmobs keygen` and
`llmobs decrypt`. Needs the `cryptography` package (`pip install 'pytest-llmobs[encrypt]'`).
"""

from __future__ import annotations

from .keys import (
    DEFAULT_KEY_ENV,
    AwsKmsKeySource,
    EnvKeySource,
    KeySource,
    KeySourceError,
    generate_key,
    key_source,
    key_source_from_env,
)
from .stream import (
    SUFFIX,
    DecryptError,
    EncryptedAtomicFile,
    decrypt_file,
    open_text,
    read_text,
)

__all__ = [
    "DEFAULT_KEY_ENV",
    "SUFFIX",
    "AwsKmsKeySource",
    "DecryptError",
    "EncryptedAtomicFile",
    "EnvKeySource",
    "KeySource",
    "KeySourceError",
    "decrypt_file",
    "generate_key",
    "key_source",
    "key_source_from_env",
    "open_text",
    "read_text",
]
