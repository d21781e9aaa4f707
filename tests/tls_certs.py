"""Certificates for the TLS tests: the ones CPython's own test suite ships.

Every Python we test (3.11 to 3.15, pyenv's or Debian's with its testsuite package)
has them in ``test/certdata``; nothing is fetched or generated. The names follow
``test.test_asyncio.utils``:

- ``SIGNED_CERTFILE``: certificate and key for ``localhost``, signed by ``SIGNING_CA``;
- ``SIGNED_CERTFILE2``: the same CA's, for ``fakehostname`` (a hostname mismatch);
- ``ONLYCERT``/``ONLYKEY``: a self-signed ``localhost`` certificate and its key
  (a verification failure for a client that trusts only ``SIGNING_CA``).
"""

from __future__ import annotations

import os
import ssl

import test

CERTDATA = os.path.join(os.path.dirname(test.__file__), "certdata")
SIGNED_CERTFILE = os.path.join(CERTDATA, "keycert3.pem")
SIGNED_CERTFILE2 = os.path.join(CERTDATA, "keycert4.pem")
SIGNING_CA = os.path.join(CERTDATA, "pycacert.pem")
ONLYCERT = os.path.join(CERTDATA, "ssl_cert.pem")
ONLYKEY = os.path.join(CERTDATA, "ssl_key.pem")
HOSTNAME = "localhost"


def server_context(certfile: str = SIGNED_CERTFILE) -> ssl.SSLContext:
    """A server context presenting certfile (certificate and key in one file)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile)
    return context


def client_context() -> ssl.SSLContext:
    """A client context that trusts SIGNING_CA only and checks the hostname."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(SIGNING_CA)
    return context
