//! An S3-compatible bucket: where the server reads an `s3://` artifact from, and where
//! `ota publish` uploads one. One builder serves both.

use object_store::aws::{AmazonS3, AmazonS3Builder};

/// How to reach an S3-compatible store.
pub struct S3Access<'a> {
    /// The region, signed into every request.
    pub region: &'a str,
    /// The access key id.
    pub access_key: &'a str,
    /// The secret key.
    pub secret_key: &'a str,
    /// An S3-compatible endpoint (MinIO, Ceph, ...); AWS's own for the region when `None`.
    /// Plain HTTP is allowed only when it says `http://`.
    pub endpoint: Option<&'a str>,
}

/// The bucket named `bucket` (nothing is sent until it is used).
pub fn bucket(bucket: &str, a: &S3Access<'_>) -> object_store::Result<AmazonS3> {
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(a.region)
        .with_access_key_id(a.access_key)
        .with_secret_access_key(a.secret_key);
    if let Some(endpoint) = a.endpoint {
        b = b
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    b.build()
}
