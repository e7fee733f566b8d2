//! `ota publish`: upload what `ota pack` wrote and register it, as publish_artifact.py
//! does.
//!
//! The artifact is checked against its registration record first. It goes to the store at its
//! object key, with the signed package envelope beside it
//! (`{dev_stage}/{resource_name}-{architecture}-{version}.package.json`); the registration
//! record (which holds the AES key) is never uploaded. Then, when `ADMIN_API_URL` is set, the
//! record is POSTed to `{ADMIN_API_URL}/{ADMIN_API_PUBLISH_PATH}` with
//! `Authorization: Bearer {ADMIN_API_TOKEN}`. A redirect is followed only to the same origin:
//! one elsewhere is refused and named, for the record holds the AES key.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use ota_core::registration::{Registration, Store};
use ota_core::sign::Envelope;
use ota_core::{Limits, Status};
use ota_host::durable;
use ota_server::s3;
use serde_json::json;

use crate::out::{self, CliError, Outcome};
use crate::progress;

/// `ota publish`.
#[derive(clap::Args)]
pub struct PublishArgs {
    /// The directory `ota pack` wrote (registration.json, package.json, the artifact).
    #[arg(long)]
    pub(crate) dir: PathBuf,
    /// Where to upload: a local directory, or `s3://bucket[/prefix]` (default `s3://$S3_BUCKET`).
    #[arg(long)]
    pub(crate) store: Option<String>,
    /// The S3-compatible endpoint (as in publish_artifact.py).
    #[arg(long, env = "S3_ENDPOINT")]
    pub(crate) s3_endpoint: Option<String>,
    /// The upload access key (as in publish_artifact.py).
    #[arg(long, env = "S3_ACCESS_KEY", hide_env_values = true)]
    pub(crate) s3_access_key: Option<String>,
    /// The upload secret key (as in publish_artifact.py).
    #[arg(long, env = "S3_SECRET_KEY", hide_env_values = true)]
    pub(crate) s3_secret_key: Option<String>,
    /// The bucket, when --store is not given (as in publish_artifact.py).
    #[arg(long, env = "S3_BUCKET")]
    pub(crate) bucket: Option<String>,
    /// The public CDN base for the registered `cdn_url` (as in publish_artifact.py).
    #[arg(long, env = "CDN_PUBLIC_BASE_URL")]
    pub(crate) cdn_base: Option<String>,
    /// The S3 region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub(crate) region: String,
    /// The admin API's base URL; the record is registered only when it is set (as in publish_artifact.py).
    #[arg(long, env = "ADMIN_API_URL")]
    pub(crate) admin_api_url: Option<String>,
    /// The bearer token for the admin API (as in publish_artifact.py).
    #[arg(long, env = "ADMIN_API_TOKEN", hide_env_values = true)]
    pub(crate) admin_api_token: Option<String>,
    /// The publish path under the admin API (as in publish_artifact.py).
    #[arg(
        long,
        env = "ADMIN_API_PUBLISH_PATH",
        default_value = "internal/resources/publish"
    )]
    pub(crate) admin_api_publish_path: String,
    /// Seconds the registration may take, from connecting to the last byte of the answer.
    #[arg(long, env = "ADMIN_API_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) admin_api_timeout: u64,
}

/// Where the artifact goes.
enum Target {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Target {
    fn parse(a: &PublishArgs) -> Result<Target, CliError> {
        let store = match (&a.store, &a.bucket) {
            (Some(s), _) => s.clone(),
            (None, Some(b)) if !b.is_empty() => format!("s3://{b}"),
            _ => {
                return Err(CliError::usage(
                    "give --store DIR or --store s3://bucket/prefix (or set S3_BUCKET)",
                ));
            }
        };
        Ok(match store.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(CliError::usage(format!("--store {store}: no bucket")));
                }
                Target::S3 {
                    bucket: bucket.into(),
                    prefix: prefix.trim_matches('/').into(),
                }
            }
            None if store.contains("://") => {
                return Err(CliError::usage(format!(
                    "--store {store}: a store is a local directory or s3://bucket/prefix"
                )));
            }
            None => Target::Local(store.into()),
        })
    }

    fn open(&self, a: &PublishArgs) -> Result<Arc<dyn ObjectStore>, CliError> {
        match self {
            Target::Local(dir) => {
                // The store's directory is synced into its parent when made; object_store then
                // syncs each object and the directories it makes before a write returns, so a
                // power cut after publish said the artifact was there (and registered its
                // cdn_url) cannot lose it.
                durable::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
                let fs = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| CliError::io(dir, e))?
                    .with_fsync(true);
                Ok(Arc::new(fs))
            }
            Target::S3 { bucket, .. } => {
                let (Some(access), Some(secret)) = (&a.s3_access_key, &a.s3_secret_key) else {
                    return Err(CliError::usage(
                        "s3 upload: set S3_ACCESS_KEY and S3_SECRET_KEY",
                    ));
                };
                let access = s3::S3Access {
                    region: &a.region,
                    access_key: access,
                    secret_key: secret,
                    endpoint: a.s3_endpoint.as_deref(),
                };
                let s3 = s3::bucket(bucket, &access)
                    .map_err(|e| CliError::usage(format!("s3://{bucket}: {e}")))?;
                Ok(Arc::new(s3))
            }
        }
    }

    fn path(&self, key: &str) -> String {
        match self {
            Target::S3 { prefix, .. } if !prefix.is_empty() => format!("{prefix}/{key}"),
            _ => key.to_string(),
        }
    }

    fn describe(&self, path: &str) -> String {
        match self {
            Target::Local(dir) => dir.join(path).display().to_string(),
            Target::S3 { bucket, .. } => format!("s3://{bucket}/{path}"),
        }
    }

    /// The registered `cdn_url` (publish_artifact.py's rule for S3 stores).
    fn cdn_url(&self, a: &PublishArgs, path: &str) -> String {
        match self {
            Target::Local(dir) => format!(
                "file://{}",
                std::path::absolute(dir.join(path))
                    .unwrap_or_else(|_| dir.join(path))
                    .display()
            ),
            Target::S3 { bucket, .. } => Store {
                s3_endpoint: a.s3_endpoint.clone().unwrap_or_default(),
                bucket: bucket.clone(),
                cdn_base: a.cdn_base.clone(),
            }
            .cdn_url(path),
        }
    }
}

/// Uploads and registers.
pub fn publish(a: &PublishArgs, json: bool) -> Result<Outcome, CliError> {
    // Usage first: nothing is read before the arguments are known to be whole.
    let target = Target::parse(a)?;
    if a.admin_api_url.is_some() && a.admin_api_token.is_none() {
        return Err(CliError::usage(
            "ADMIN_API_URL is set but ADMIN_API_TOKEN is not",
        ));
    }
    let reg_path = a.dir.join("registration.json");
    let env_path = a.dir.join("package.json");
    let record =
        Registration::from_json(&out::read(&reg_path, Limits::DEFAULT.max_document_bytes)?)
            .map_err(|e| CliError::parse(&reg_path, &e))?;
    let envelope = Envelope::from_json(
        &out::read(&env_path, Limits::DEFAULT.max_envelope_bytes())?,
        &Limits::DEFAULT,
    )
    .map_err(|e| CliError::parse(&env_path, &e))?;
    let key = record.object_key();
    let artifact = a.dir.join(&key);
    check_artifact(&artifact, &record, json)?;
    let store = target.open(a)?;
    let path = target.path(&key);
    let envelope_path = target.path(&format!("{}.package.json", key.trim_end_matches(".enc")));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::usage(format!("starting the I/O runtime: {e}")))?;
    runtime.block_on(upload(&*store, &artifact, &path, json, &target))?;
    runtime
        .block_on(store.put(
            &ObjectPath::from(envelope_path.as_str()),
            PutPayload::from(envelope.to_json()),
        ))
        .map_err(|e| CliError::usage(format!("{}: {e}", target.describe(&envelope_path))))?;

    let record = Registration {
        cdn_url: target.cdn_url(a, &path),
        ..record
    };
    out::write_atomic(&reg_path, record.to_json().as_bytes(), true)?;
    let registered = match &a.admin_api_url {
        Some(base) => Some(runtime.block_on(register(
            base,
            &a.admin_api_publish_path,
            a.admin_api_token.as_deref().unwrap_or_default(),
            &record,
            Duration::from_secs(a.admin_api_timeout),
        ))?),
        None => None,
    };
    let mut text = format!(
        "uploaded {} ({})\n  package   {}\n  cdn_url   {}",
        target.describe(&path),
        out::bytes(record.size_bytes),
        target.describe(&envelope_path),
        record.cdn_url
    );
    match &registered {
        Some((url, status)) => text.push_str(&format!("\n  registered at {url} (HTTP {status})")),
        None => text.push_str("\n  not registered: ADMIN_API_URL is not set"),
    }
    Ok(Outcome::ok(
        text,
        json!({
            "ok": true,
            "object": target.describe(&path),
            "package": target.describe(&envelope_path),
            "cdn_url": record.cdn_url,
            "sha256": record.sha256,
            "size_bytes": record.size_bytes,
            "registered": registered.as_ref().map(|(url, status)| json!({"url": url, "http_status": status})),
        }),
    ))
}

/// The artifact must be what the record says before it goes anywhere.
fn check_artifact(path: &Path, record: &Registration, json: bool) -> Result<(), CliError> {
    let d = progress::hash_file(path, record.size_bytes, "checking", json)?;
    if d.size_bytes != record.size_bytes || d.sha256 != record.sha256 {
        return Err(CliError::failure(
            Some(Status::DigestMismatch),
            format!(
                "{}: does not match registration.json (size {} vs {}, sha256 {} vs {})",
                path.display(),
                d.size_bytes,
                record.size_bytes,
                d.sha256,
                record.sha256
            ),
        ));
    }
    Ok(())
}

async fn upload(
    store: &dyn ObjectStore,
    artifact: &Path,
    path: &str,
    json: bool,
    target: &Target,
) -> Result<(), CliError> {
    let fail = |e: object_store::Error| CliError::usage(format!("{}: {e}", target.describe(path)));
    let mut file = File::open(artifact).map_err(|e| CliError::io(artifact, e))?;
    let size = file
        .metadata()
        .map_err(|e| CliError::io(artifact, e))?
        .len();
    let bar = progress::bytes(size, "uploading", json);
    let upload = store
        .put_multipart(&ObjectPath::from(path))
        .await
        .map_err(fail)?;
    let mut w = WriteMultipart::new(upload);
    let mut buf = vec![0u8; 5 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = w.abort().await;
                return Err(CliError::io(artifact, e));
            }
        };
        if n == 0 {
            break;
        }
        w.wait_for_capacity(4).await.map_err(fail)?;
        w.write(&buf[..n]);
        bar.inc(n as u64);
    }
    w.finish().await.map_err(fail)?;
    bar.finish_and_clear();
    Ok(())
}

async fn register(
    base: &str,
    path: &str,
    token: &str,
    record: &Registration,
    timeout: Duration,
) -> Result<(String, u16), CliError> {
    let url = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let fail = |e: reqwest::Error| {
        if e.is_timeout() {
            CliError::usage(format!(
                "POST {url}: no answer within {} s (--admin-api-timeout); the package is \
                 uploaded but not registered",
                timeout.as_secs()
            ))
        } else {
            CliError::usage(format!("POST {url}: {e}"))
        }
    };
    // The request carries the token and the AES key: it follows a redirect only to the same
    // origin (scheme, host and port), and reports any other.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if attempt.previous().len() > 10 {
                attempt.error("too many redirects")
            } else if same {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(fail)?;
    let response = client
        .post(&url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(record.to_json())
        .send()
        .await
        .map_err(fail)?;
    let status = response.status();
    if status.is_redirection() {
        let to = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(|l| {
                response
                    .url()
                    .join(l)
                    .map_or_else(|_| l.to_string(), |u| u.to_string())
            })
            .unwrap_or_else(|| "nowhere (no Location)".into());
        return Err(CliError::usage(format!(
            "POST {url}: HTTP {status} redirects to {to}, another origin; the registration \
             (with the AES key and the token) is not sent there"
        )));
    }
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        return Err(CliError::usage(format!(
            "POST {url}: HTTP {status}: {}",
            body.trim()
        )));
    }
    Ok((url, status.as_u16()))
}
