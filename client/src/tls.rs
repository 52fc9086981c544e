//! The client's byte stream: plain TCP, or TLS over it (`amqps://`) with rustls
//! driven by hand over the same socket halves, so the client keeps its
//! non-blocking `try_read`/`try_write` and its one-task-per-connection design.

use std::io::{self, Read, Write};
use std::sync::Arc;

use crate::uri::ClientCert;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::ClientConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// How an `amqps://` broker's certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsTrust {
    /// The CA certificates (PEM) in this file.
    CaFile(std::path::PathBuf),
    /// Not at all (`--insecure`): for self-signed test certificates only.
    Insecure,
    /// Neither was given: an `amqps://` URI is refused (this tool ships no
    /// system roots; say which CA to trust).
    #[default]
    Unset,
}

/// What a client TLS configuration is made of: the trust, the certificate
/// presented (if any), whether the server name is sent.
type ConfigKey = (TlsTrust, Option<ClientCert>, bool);

/// The client TLS configuration for `trust` (with `cert` presented and SNI
/// as `sni` says), made once per process and shared by every connection
/// (connection churn measures connections, not file reads).
pub fn cached_config(
    trust: &TlsTrust,
    cert: Option<&ClientCert>,
    sni: bool,
) -> Result<Arc<rustls::ClientConfig>, String> {
    static MADE: std::sync::Mutex<Vec<(ConfigKey, Arc<rustls::ClientConfig>)>> = std::sync::Mutex::new(Vec::new());
    let key = (trust.clone(), cert.cloned(), sni);
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = made.iter().find(|(k, _)| *k == key) {
        return Ok(c.clone());
    }
    let c = client_config(trust, cert, sni)?;
    made.push((key, c.clone()));
    Ok(c)
}

/// A client TLS configuration.
pub fn client_config(
    trust: &TlsTrust,
    cert: Option<&ClientCert>,
    sni: bool,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match trust {
        TlsTrust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e:?}", path.display()))? {
                let cert = cert.map_err(|e| format!("{}: {e:?}", path.display()))?;
                roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in the file", path.display()));
            }
            with_cert(builder.with_root_certificates(roots), cert)?
        }
        TlsTrust::Insecure => with_cert(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider))),
            cert,
        )?,
        TlsTrust::Unset => {
            return Err(
                "amqps:// needs a CA to trust: --tls-ca FILE or the URI's cacertfile=FILE (or --insecure / \
                 verify=verify_none for a test certificate)"
                    .into(),
            )
        }
    };
    let mut config = config;
    config.enable_sni = sni;
    Ok(Arc::new(config))
}

/// Finishes a configuration with `cert` presented, or none.
fn with_cert(
    b: rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    cert: Option<&ClientCert>,
) -> Result<rustls::ClientConfig, String> {
    let Some(c) = cert else {
        return Ok(b.with_no_client_auth());
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert)
        .map_err(|e| format!("{}: {e:?}", c.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e:?}", c.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", c.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&c.key).map_err(|e| format!("{}: {e:?}", c.key.display()))?;
    b.with_client_auth_cert(chain, key)
        .map_err(|e| format!("{}: {e}", c.cert.display()))
}

/// Ciphertext read per socket read (at most).
const CIPHER_READ_BYTES: usize = 64 * 1024;

/// A connection's stream.
pub(crate) struct Stream {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    tls: Option<Box<Tls>>,
}

struct Tls {
    conn: ClientConnection,
    /// Ciphertext read and not yet taken by rustls (it takes a record at a time
    /// while its plaintext is unread).
    cipher: Vec<u8>,
    taken: usize,
    /// Ciphertext to write.
    out: Vec<u8>,
}

impl Stream {
    /// Connects, and with `tls` runs the handshake (the certificate checked
    /// against `server_name`, or `host`).
    pub async fn connect(
        host: &str,
        port: u16,
        tls: Option<&Arc<rustls::ClientConfig>>,
        server_name: Option<&str>,
    ) -> io::Result<Stream> {
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let tls = match tls {
            None => None,
            Some(config) => {
                let name = ServerName::try_from(server_name.unwrap_or(host).to_string())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let mut conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
                // Every write is flushed at once: rustls need not bound it.
                conn.set_buffer_limit(None);
                Some(Box::new(Tls {
                    conn,
                    cipher: Vec::with_capacity(CIPHER_READ_BYTES),
                    taken: 0,
                    out: Vec::new(),
                }))
            }
        };
        let mut s = Stream { rd, wr, tls };
        s.handshake().await?;
        Ok(s)
    }

    async fn handshake(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else { return Ok(()) };
        while tls.conn.is_handshaking() {
            tls.flush(&mut self.wr).await?;
            if tls.conn.is_handshaking() && tls.conn.wants_read() {
                if tls.fill(&mut self.rd).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                tls.pump()?;
            }
        }
        tls.flush(&mut self.wr).await
    }

    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self.tls.as_mut() {
            None => self.wr.write_all(data).await,
            Some(tls) => {
                tls.conn.writer().write_all(data)?;
                tls.flush(&mut self.wr).await
            }
        }
    }

    /// Best effort, without waiting (a close-ok while the peer is closing).
    pub fn try_write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.tls.as_mut() {
            None => self.wr.try_write(data),
            Some(tls) => {
                tls.conn.writer().write_all(data)?;
                tls.out.clear();
                while tls.conn.wants_write() {
                    tls.conn.write_tls(&mut tls.out)?;
                }
                self.wr.try_write(&tls.out)
            }
        }
    }

    /// Reads at least one byte (0: the peer closed). Cancel-safe, as a plain
    /// socket read is (callers wrap it in timeouts): it never writes, records
    /// that TLS wants to send go out with the next write.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.rd.read(buf).await;
        };
        loop {
            if let Some(n) = tls.plaintext(buf)? {
                return Ok(n);
            }
            if tls.fill(&mut self.rd).await? == 0 {
                return Ok(0);
            }
            tls.pump()?;
        }
    }

    /// Reads what is there without waiting (`WouldBlock` if nothing is).
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.rd.try_read(buf);
        };
        loop {
            if let Some(n) = tls.plaintext(buf)? {
                return Ok(n);
            }
            tls.cipher.clear();
            tls.taken = 0;
            let n = self.rd.try_read_buf(&mut tls.cipher)?;
            if n == 0 {
                return Ok(0);
            }
            tls.pump()?;
        }
    }
}

impl Tls {
    /// Plaintext rustls has, if any (`Some(0)`: TLS closed).
    fn plaintext(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.taken == self.cipher.len() {
                return Ok(None);
            }
            let before = self.taken;
            self.pump()?;
            if self.taken == before {
                return Err(io::Error::other("TLS took no more input and gave no plaintext"));
            }
        }
    }

    /// Reads ciphertext from the socket (only once rustls took all it had).
    async fn fill(&mut self, rd: &mut OwnedReadHalf) -> io::Result<usize> {
        if self.taken < self.cipher.len() {
            return Ok(self.cipher.len() - self.taken);
        }
        // `read_buf` appends only what it read: a caller's timeout that drops
        // this future mid-read leaves no bytes that were never received.
        self.cipher.clear();
        self.taken = 0;
        rd.read_buf(&mut self.cipher).await
    }

    /// Gives rustls the ciphertext it will take now.
    fn pump(&mut self) -> io::Result<()> {
        while self.taken < self.cipher.len() && self.conn.wants_read() {
            let n = self.conn.read_tls(&mut &self.cipher[self.taken..])?;
            self.taken += n;
            self.conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if n == 0 {
                break;
            }
        }
        Ok(())
    }

    async fn flush(&mut self, wr: &mut OwnedWriteHalf) -> io::Result<()> {
        while self.conn.wants_write() {
            self.out.clear();
            self.conn.write_tls(&mut self.out)?;
            wr.write_all(&self.out).await?;
        }
        Ok(())
    }
}

/// `--insecure`: accepts any certificate (signatures are still checked, so the
/// handshake itself is sound; who is at the other end is not).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
