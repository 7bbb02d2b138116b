"""Run the test OpenID provider: ``python -m tests.oidc_provider.serve <port> <dir>``.

``<dir>`` holds claims.json (the client and the users, written by the test); the provider's
database and signing key are made there. It prints "ready" once it listens."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path


def main() -> None:
    port, workdir = int(sys.argv[1]), Path(sys.argv[2])
    key_file = workdir / "signing-key.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tests.oidc_provider.settings",
        OIDC_PROVIDER_SECRET=secrets.token_urlsafe(50),
        OIDC_PROVIDER_DB=str(workdir / "provider.sqlite3"),
        OIDC_PROVIDER_ISSUER=f"http://127.0.0.1:{port}/o",
        OIDC_PROVIDER_KEY=str(key_file),
        OIDC_PROVIDER_CLAIMS=str(workdir / "claims.json"),
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    seed = json.loads((workdir / "claims.json").read_text())
    for username, entry in seed["users"].items():
        get_user_model().objects.create_user(username=username, password=entry["password"])
    client = seed["client"]
    Application.objects.create(
        name="Stowage",
        client_id=client["id"],
        client_secret=client["secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(client["redirect_uris"]),
        post_logout_redirect_uris=" ".join(client["post_logout_redirect_uris"]),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    print("ready", flush=True)
    run("127.0.0.1", port, get_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
