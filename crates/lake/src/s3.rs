//! S3 for the lake without the AWS SDK.
//!
//! `s3://` and `s3a://` tables use object_store's own S3 client (SigV4;
//! credentials from the `[lake] storage` options, the `AWS_*` environment,
//! a web identity token, the ECS task role or the instance metadata
//! service) and Delta's default log store, which writes each commit with
//! put-if-absent (`If-None-Match: *`): two writers racing for a version
//! cannot both win. deltalake's own `s3` feature does the same through the
//! AWS SDK (aws-config, STS, SSO, aws-lc), which is most of a fresh build
//! and is needed only for `~/.aws` profiles and SSO logins; set the keys in
//! the environment or the storage options instead.

use std::str::FromStr;
use std::sync::{Arc, Once};

use deltalake::logstore::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{Error as StoreError, ObjectStoreScheme};
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use deltalake::{DeltaResult, DeltaTableError};
use url::Url;

/// Registers the S3 handlers with deltalake (once per process).
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["s3", "s3a"] {
            let url = Url::parse(&format!("{scheme}://")).expect("valid scheme URL");
            object_store_factories().insert(url.clone(), Arc::new(S3StoreFactory));
            logstore_factories().insert(url, Arc::new(S3LogStoreFactory));
        }
    });
}

/// Builds the S3 store of a table URL from the environment, then the
/// storage options (which win).
struct S3StoreFactory;

impl ObjectStoreFactory for S3StoreFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let mut builder = AmazonS3Builder::from_env().with_url(url.to_string());
        for (key, value) in &config.raw {
            let k = AmazonS3ConfigKey::from_str(&key.to_ascii_lowercase())
                .map_err(|_| DeltaTableError::Generic(unknown_option(key)))?;
            builder = builder.with_config(k, value.clone());
        }
        let store = builder.build().map_err(store_error)?;
        let (_, path) = ObjectStoreScheme::parse(url).map_err(|e| store_error(e.into()))?;
        let prefix = Path::parse(path.as_ref()).map_err(|e| store_error(e.into()))?;
        Ok((Arc::new(store), prefix))
    }
}

/// The S3 options people set most, for suggestions.
const COMMON_OPTIONS: &[&str] = &[
    "aws_endpoint",
    "aws_region",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_allow_http",
    "aws_virtual_hosted_style_request",
    "aws_skip_signature",
    "aws_default_region",
    "aws_bucket",
];

/// Whether `key` is an S3 storage option object_store reads.
pub(crate) fn check_option(key: &str) -> Result<(), String> {
    AmazonS3ConfigKey::from_str(&key.to_ascii_lowercase())
        .map(|_| ())
        .map_err(|_| unknown_option(key))
}

fn unknown_option(key: &str) -> String {
    let hint = match diag::suggest(&key.to_ascii_lowercase(), COMMON_OPTIONS) {
        Some(s) => format!("did you mean {s:?}?"),
        None => format!("known: {}, …", COMMON_OPTIONS.join(", ")),
    };
    format!("unknown S3 storage option {key:?} ({hint})")
}

/// Delta's default log store: commits are put-if-absent writes.
struct S3LogStoreFactory;

impl LogStoreFactory for S3LogStoreFactory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn store_error(source: StoreError) -> DeltaTableError {
    DeltaTableError::ObjectStore { source }
}
