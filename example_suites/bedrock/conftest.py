"""A bedrock-runtime client. LLM_URL is where the cassettes were recorded: the local provider
server `pytest_llmobs.testing.ProviderServer`, which speaks Bedrock's Converse JSON and
binary event streams (started by `python example_suites/demo.py --record`). Replaying needs
no server and no AWS account: SigV4 headers and signatures are not compared."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from botocore.config import Config
from product_copy import CopyWriter


@pytest.fixture
def bedrock() -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=os.environ.get("LLM_URL", "http://127.0.0.1:8080"),
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",  # AWS's documentation example key
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )


@pytest.fixture
def writer(bedrock: Any) -> CopyWriter:
    return CopyWriter(bedrock)
