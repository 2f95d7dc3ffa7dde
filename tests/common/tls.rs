//! Certificates made at run time: a CA, and server and client certificates it issues, written
//! as PEM files for the server's and the clients' settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate authority of its own.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA's certificate in PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Issued {
        self.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate naming `who`.
    pub fn client(&self, who: &str) -> Issued {
        self.issue(&[who], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Writes `text` to `dir/name` through a temporary file and a rename, as certificate managers
/// do, so a reader never sees half of it.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let part = dir.join(format!(".{name}.part"));
    std::fs::write(&part, text).expect("write PEM");
    std::fs::rename(&part, &path).expect("rename PEM");
    path
}

/// The server's TLS files in `dir`: `server.pem`, `server.key` and, when given, `clients.pem`.
pub fn server_files(
    dir: &Path,
    server: &Issued,
    client_ca: Option<&Ca>,
) -> shardlog::tls::TlsFiles {
    shardlog::tls::TlsFiles {
        cert: write(dir, "server.pem", &server.cert),
        key: write(dir, "server.key", &server.key),
        client_ca: client_ca.map(|ca| write(dir, "clients.pem", &ca.pem())),
    }
}

/// Client TLS settings trusting `ca`, showing `identity` when given.
pub fn client_tls(ca: &Ca, identity: Option<&Issued>) -> shardlog::client::ClientTls {
    shardlog::client::ClientTls {
        ca_pem: Some(ca.pem().into_bytes()),
        identity: identity.map(|i| (i.cert.clone().into_bytes(), i.key.clone().into_bytes())),
        domain: None,
    }
}

/// A rustls client configuration trusting `ca`, for HTTP clients (the Kinesis API, metrics).
pub fn rustls_client(ca: &Ca) -> Arc<tokio_rustls::rustls::ClientConfig> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from(ca.issuer.der().to_vec());
    roots.add(der).expect("CA root");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}
