"""Record and replay LLM traffic with cassettes (vcrpy underneath, our transports on top).

- `format`: the file (pretty JSON in a .yaml file; vcrpy YAML read too), atomic writes;
- `interactions`: exchange → stored interaction → canned response, redaction of stored ones;
- `matching`: what makes two requests the same call;
- `cassette`: vcrpy's `Cassette` over our format and matcher;
- `vcrpy_version`: which vcrpy works, checked when pytest starts;
- `yaml_loader`: YAML cassettes read safely, whatever vcrpy is installed;
- `session`: the responder / listener on the interceptor and the stack of cassettes in use;
- `hooks`: the pytest side (marker, per-test and per-fixture cassettes, failing on misses);
- `vcrpy_compat`: vcrpy / pytest-recording cassettes read, and written back;
- `cli`: `llmobs cassettes upgrade` and `downgrade`.
"""

from .format import CassetteError
from .hooks import MODES, parse_timing

__all__ = ["MODES", "CassetteError", "parse_timing"]
