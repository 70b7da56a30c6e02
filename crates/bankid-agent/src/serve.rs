//! Putting the app on a socket: plain HTTP through axum, or HTTPS through our own accept loop
//! (axum serves no TLS), plus the housekeeping tick that ends idle sessions and old orders.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Extension;

use crate::error::StartupError;
use crate::proxy::DirectTls;
use crate::{router, App};

/// Runs [`App::housekeeping`] every 250 ms until the app is dropped.
pub fn spawn_housekeeping(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { break };
            app.housekeeping().await;
        }
    });
}

/// Serves the app on `listener` until the task is dropped: plain HTTP, or HTTPS with `tls`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    spawn_housekeeping(&app);
    let router = router(app);
    // The TCP peer goes with every request (as `ConnectInfo`): it is the client, or the proxy
    // whose forwarding headers may be believed.
    let Some(tls) = tls else {
        return axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                log::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let svc = hyper_util::service::TowerToHyperService::new(
            router
                .clone()
                .layer(Extension(ConnectInfo(peer)))
                .layer(Extension(DirectTls)),
        );
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                log::debug!("TLS handshake with {peer} failed");
                return;
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                log::debug!("connection with {peer}: {e}");
            }
        });
    }
}

/// A TLS server configuration from a PEM certificate chain and private key.
pub fn tls_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, StartupError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let tls = |path: &Path, problem: String| StartupError::Tls {
        path: path.to_path_buf(),
        problem,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect())
        .map_err(|e| tls(cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls(cert_file, "no certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| tls(key_file, e.to_string()))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls(cert_file, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| tls(cert_file, e.to_string()))?;
    Ok(Arc::new(cfg))
}
