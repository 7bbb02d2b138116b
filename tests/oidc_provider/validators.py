"""The provider's claims, read from the test's JSON file on every token, so a test can change
someone's roles between two sign-ins. A user's ``id_token`` entry overrides claims of the ID
token itself: the provider then misbehaves as a test needs (another audience, another issuer,
another nonce), and still signs the token with its real key."""

from __future__ import annotations

import json
import os
from pathlib import Path

from oauth2_provider.oauth2_validators import OAuth2Validator


def _user_entry(username: str) -> dict:
    return json.loads(Path(os.environ["OIDC_PROVIDER_CLAIMS"]).read_text())["users"].get(username, {})


class ClaimsFromFile(OAuth2Validator):
    oidc_claim_scope = None

    def get_additional_claims(self, request):
        return dict(_user_entry(request.user.username).get("claims", {}))

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        claims.update(_user_entry(request.user.username).get("id_token", {}))
        return claims, expiration_time
