"""A third-party OAuth client against Gatehouse: authlib's RFC 7523 client authentication
(`private_key_jwt`, `client_secret_jwt`) with its defaults (exp = iat + 3600, a 36-character
jti, aud = the token endpoint), used to get a token and to introspect and revoke it.

Usage: authlib_client.py METHOD TOKEN_ENDPOINT INTROSPECTION_ENDPOINT REVOCATION_ENDPOINT
                         CLIENT_ID SECRET_OR_PEM_FILE
Prints one JSON object: {"token": ..., "introspection": ..., "revoked_status": ...}.
Run by tests/tests/e2e/interop.rs; talks only to the loopback server it is given.
"""

import json
import sys

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import ClientSecretJWT, PrivateKeyJWT


def main() -> int:
    method, token_url, introspect_url, revoke_url, client_id, credential = sys.argv[1:7]
    if method == "private_key_jwt":
        with open(credential, encoding="utf-8") as f:
            secret = f.read()
        auth = PrivateKeyJWT(token_url)
    elif method == "client_secret_jwt":
        secret = credential
        auth = ClientSecretJWT(token_url)
    else:
        raise SystemExit(f"unknown method {method}")
    # The same RFC 7523 authentication at every endpoint (authlib defaults revocation to
    # client_secret_basic otherwise).
    session = OAuth2Session(
        client_id,
        secret,
        token_endpoint_auth_method=auth,
        revocation_endpoint_auth_method=auth,
    )
    session.trust_env = False
    token = session.fetch_token(token_url, grant_type="client_credentials")
    seen = session.introspect_token(introspect_url, token=token["access_token"])
    revoked = session.revoke_token(revoke_url, token=token["access_token"])
    print(
        json.dumps(
            {
                "token": token,
                "introspection": seen.json(),
                "introspection_status": seen.status_code,
                "revoked_status": revoked.status_code,
                "revoked_body": revoked.text,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
