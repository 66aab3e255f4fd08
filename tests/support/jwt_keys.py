"""A signing key and its JWKS for OAUTHBEARER tests, and tokens made with it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


class SigningKey:
    def __init__(self, kid: str = "test-key") -> None:
        self.kid = kid
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._private.public_key()))
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def token(self, lifetime_s: float = 300, **claims: Any) -> str:
        now = time.time()
        body = {"sub": "alice", "iat": int(now), "exp": int(now + lifetime_s), **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self._private, algorithm="RS256", headers={"kid": self.kid})


def unsecured_token(lifetime_s: float = 300, **claims: Any) -> str:
    now = time.time()
    body = {"sub": "alice", "iat": int(now), "exp": int(now + lifetime_s), **claims}
    return jwt.encode(body, None, algorithm="none")
