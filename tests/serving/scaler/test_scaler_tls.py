"""TLS and mTLS handshakes with certificates made in the test (never committed).

KEDA's TriggerAuthentication gives the external scaler client `caCert` (to verify us) and, for mTLS,
`tlsClientCert`/`tlsClientKey`; these tests are that client: it must connect with the right CA and
certificate and be refused without them, or with a certificate from another CA."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from llmobs.serving.scaler import ScalerTLSConfig, serve_scaler
from llmobs.serving.scaler.proto import externalscaler_pb2 as pb
from llmobs.serving.scaler.proto import externalscaler_pb2_grpc as pb_grpc
from llmobs.state import StateHolder
from tests.serving.scaler.test_scaler_grpc import ENGINES, publish, ref, scaler_config

Pair = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue(ca: Pair, cn: str, *, server: bool) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca[1].subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, builder.sign(ca[0], hashes.SHA256())


def pem(pair: Pair) -> tuple[bytes, bytes]:
    key = pair[0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key, pair[1].public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, bytes | Path]:
    ca, other_ca = make_ca("llmobs-test-ca"), make_ca("someone-else")
    server_key, server_cert = pem(issue(ca, "llmobs-scaler", server=True))
    client_key, client_cert = pem(issue(ca, "keda-operator", server=False))
    rogue_key, rogue_cert = pem(issue(other_ca, "keda-operator", server=False))
    ca_pem = pem(ca)[1]
    files = {"server.crt": server_cert, "server.key": server_key, "ca.crt": ca_pem}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {"dir": tmp_path, "ca": ca_pem, "client_key": client_key, "client_cert": client_cert,
            "rogue_key": rogue_key, "rogue_cert": rogue_cert}


async def call(port: int, creds: grpc.ChannelCredentials | None) -> bool:
    target = f"127.0.0.1:{port}"
    channel = grpc.aio.secure_channel(target, creds) if creds else grpc.aio.insecure_channel(target)
    async with channel:
        reply = await pb_grpc.ExternalScalerStub(channel).GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=ref({"model": "m"})), timeout=3)
        return reply.metricValues[0].metricValueFloat == 2.0


async def refused(port: int, creds: grpc.ChannelCredentials | None) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call(port, creds)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mutual", [False, True])
async def test_tls_and_mtls_handshakes(pki: dict, mutual: bool, engine: str) -> None:
    d: Path = pki["dir"]
    tls = ScalerTLSConfig(cert_file=d / "server.crt", key_file=d / "server.key",
                          client_ca_file=d / "ca.crt" if mutual else None)
    holder = StateHolder()
    publish(holder, 2)
    handle = await serve_scaler(scaler_config(engine, tls=tls, stale_after_intervals=100), holder,
                                interval_seconds=1.0)
    try:
        with_client_cert = grpc.ssl_channel_credentials(pki["ca"], pki["client_key"], pki["client_cert"])
        assert await call(handle.port, with_client_cert)
        ca_only = grpc.ssl_channel_credentials(pki["ca"])
        await refused(handle.port, None)  # plaintext to a TLS port
        await refused(handle.port, grpc.ssl_channel_credentials(pem(make_ca("not-our-ca"))[1]))  # server unverifiable
        if mutual:
            await refused(handle.port, ca_only)  # no client certificate
            await refused(handle.port, grpc.ssl_channel_credentials(pki["ca"], pki["rogue_key"], pki["rogue_cert"]))
        else:
            assert await call(handle.port, ca_only)
    finally:
        await handle.stop()
