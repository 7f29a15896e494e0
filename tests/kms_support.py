"""A local fake AWS KMS speaking the real KMS JSON protocol (`X-Amz-Target:
TrentService.<Operation>`, `application/x-amz-json-1.1`, base64 blobs, `__type` errors), so
boto3 talks to it through `AWS_ENDPOINT_URL_KMS` with nothing patched.

Ciphertext blobs are real: the data key encrypted (AES-256-GCM) under the fake key's own
material, bound to the encryption context, with the key's id in front, as KMS does."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

REGION = "us-east-1"
ACCOUNT = "111122223333"


class KmsError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class FakeKms:
    """One KMS key (`alias/llmobs-test`); `requests` lists (operation, body) as received."""

    def __init__(self, key_uuid: str | None = None) -> None:
        self.key_uuid = key_uuid or str(uuid.uuid4())
        self.arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{self.key_uuid}"
        self.alias = "alias/llmobs-test"
        self.material = AESGCM.generate_key(bit_length=256)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.auth: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKms:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def operations(self) -> list[str]:
        return [op for op, _ in self.requests]

    # -- the operations ---------------------------------------------------------------------
    def _resolve(self, key_id: str | None) -> None:
        if key_id not in (
            self.arn,
            self.alias,
            self.key_uuid,
            f"arn:aws:kms:{REGION}:{ACCOUNT}:{self.alias}",
        ):
            raise KmsError("NotFoundException", f"Key '{key_id}' does not exist")

    def generate_data_key(self, body: dict[str, Any]) -> dict[str, Any]:
        self._resolve(body.get("KeyId"))
        if body.get("KeySpec") != "AES_256":
            raise KmsError("ValidationException", "KeySpec must be AES_256 here")
        plaintext = secrets.token_bytes(32)
        nonce = secrets.token_bytes(12)
        context = _context(body.get("EncryptionContext"))
        blob = (
            uuid.UUID(self.key_uuid).bytes
            + nonce
            + AESGCM(self.material).encrypt(nonce, plaintext, context)
        )
        return {"CiphertextBlob": _b64(blob), "Plaintext": _b64(plaintext), "KeyId": self.arn}

    def decrypt(self, body: dict[str, Any]) -> dict[str, Any]:
        blob = base64.b64decode(body.get("CiphertextBlob", ""))
        if len(blob) < 16 + 12 + 16 or str(uuid.UUID(bytes=blob[:16])) != self.key_uuid:
            raise KmsError("InvalidCiphertextException", "")
        if body.get("KeyId"):
            self._resolve(body["KeyId"])
        try:
            plaintext = AESGCM(self.material).decrypt(
                blob[16:28], blob[28:], _context(body.get("EncryptionContext"))
            )
        except InvalidTag:
            raise KmsError("InvalidCiphertextException", "") from None
        return {
            "KeyId": self.arn,
            "Plaintext": _b64(plaintext),
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        kms = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                target = self.headers.get("X-Amz-Target", "")
                kms.auth.append(self.headers.get("Authorization", ""))
                operation = target.removeprefix("TrentService.")
                kms.requests.append((operation, body))
                try:
                    if not self.headers.get("Authorization", "").startswith(
                        "AWS4-HMAC-SHA256 Credential="
                    ):
                        raise KmsError("MissingAuthenticationTokenException", "unsigned")
                    handler = {"GenerateDataKey": kms.generate_data_key, "Decrypt": kms.decrypt}
                    if operation not in handler:
                        raise KmsError("UnknownOperationException", target)
                    status, reply = 200, handler[operation](body)
                except KmsError as exc:
                    status, reply = 400, {"__type": exc.kind, "message": str(exc)}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        return Handler


def _context(context: dict[str, str] | None) -> bytes:
    return json.dumps(context or {}, sort_keys=True).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def aws_env(kms: FakeKms) -> dict[str, str]:
    """What a CI job would set: credentials, region, and the KMS endpoint."""
    return {
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_KMS": kms.url,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
