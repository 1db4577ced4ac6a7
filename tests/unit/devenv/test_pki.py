"""The local CA issues certificates that chain to it and carry the right names and usages."""

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from opsledger.devenv.pki import CertificateAuthority


def test_server_and_client_certificates(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path).ensure()
    server = ca.issue(
        "api", common_name="kube-apiserver", hosts=("127.0.0.1", "kubernetes"), server=True
    )
    client = ca.issue("admin", common_name="admin", organization="system:masters", client=True)
    ca_cert = x509.load_pem_x509_certificate(ca.pair.cert_pem())
    server_cert = x509.load_pem_x509_certificate(server.cert_pem())
    client_cert = x509.load_pem_x509_certificate(client.cert_pem())

    server_cert.verify_directly_issued_by(ca_cert)
    client_cert.verify_directly_issued_by(ca_cert)
    sans = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    org = client_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert org == "system:masters"
    usages = client_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (tmp_path / "admin.key").stat().st_mode & 0o077 == 0


def test_issuing_twice_keeps_the_first_certificate(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path).ensure()
    first = ca.issue("x", common_name="x", client=True).cert_pem()
    again = CertificateAuthority(tmp_path).ensure().issue("x", common_name="x", client=True)
    assert again.cert_pem() == first
