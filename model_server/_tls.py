"""TLS for the gRPC API, configured like TF Serving's ``--ssl_config_file`` (``SSLConfig``)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc


@dataclasses.dataclass(frozen=True)
class SslOptions:
    """TF Serving's ``SSLConfig``: PEM *contents* (not paths), as TF Serving reads them.

    Args:
        server_key: the server's private key (PEM).
        server_cert: the server's certificate chain (PEM).
        custom_ca: CA certificates (PEM) that client certificates must chain to.
        client_verify: require a client certificate signed by ``custom_ca`` (mutual TLS).
    """

    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False

    def __post_init__(self) -> None:
        if not self.server_key.strip() or not self.server_cert.strip():
            raise ValueError("SSLConfig needs both server_key and server_cert (PEM contents)")
        if self.client_verify and not self.custom_ca.strip():
            raise ValueError(
                "SSLConfig.client_verify is true but custom_ca is empty: client certificates "
                "can only be verified against a CA; set custom_ca to its PEM"
            )

    def __repr__(self) -> str:  # never print the private key
        return f"SslOptions(custom_ca={bool(self.custom_ca)}, client_verify={self.client_verify})"

    @classmethod
    def from_text(cls, text: str, *, source: str = "<text>") -> SslOptions:
        """Parse a text-format ``tensorflow.serving.SSLConfig`` (``--ssl_config_file``).

        Raises:
            ValueError: unparsable text, unknown fields, or a missing key/certificate.
        """
        from ._config_protos import parse_text, ssl_config_class

        proto = parse_text(ssl_config_class(), text, source)
        try:
            return cls(proto.server_key, proto.server_cert, proto.custom_ca, proto.client_verify)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc

    def server_credentials(self) -> grpc.ServerCredentials:
        """``grpc.ServerCredentials`` for ``add_secure_port``."""
        import grpc

        return grpc.ssl_server_credentials(
            [(self.server_key.encode(), self.server_cert.encode())],
            root_certificates=self.custom_ca.encode() if self.custom_ca else None,
            require_client_auth=self.client_verify,
        )
