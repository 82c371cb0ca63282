"""The server's TLS context (security profiles 2 and 3): HTTPS and wss:// on one port.

With `server.tls_client_ca_file` a client certificate is verified against that CA when one is
offered, but not demanded at the handshake: driver apps, operators and webhooks reach the same
port without one. The OCPP endpoint demands it of a station at profile 3 (its own or the
server's) and checks its CN.
"""

from __future__ import annotations

import ssl

from csms.settings import ConfigError
from web.settings import ServerSettings


def server_context(server: ServerSettings) -> ssl.SSLContext | None:
    """None without `server.tls_cert_file`; a ConfigError naming the key a file breaks."""
    if not server.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(server.tls_cert_file, server.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"server.tls_cert_file / server.tls_key_file: cannot load "
                          f"{server.tls_cert_file}: {exc}") from None
    if server.tls_client_ca_file:
        try:
            context.load_verify_locations(cafile=server.tls_client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"server.tls_client_ca_file: cannot load "
                              f"{server.tls_client_ca_file}: {exc}") from None
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
