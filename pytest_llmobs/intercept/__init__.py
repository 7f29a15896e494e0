"""Transport patches: every HTTP exchange, byte for byte, with arrival times."""

from .exchange import CannedResponse, Exchange
from .interceptor import Interceptor

__all__ = ["CannedResponse", "Exchange", "Interceptor"]
