//! `ObjectStore`: the remote transport (issue 18) on the `object_store` crate — S3 (and
//! S3-compatible servers) or an atomic in-memory store — driven by one small tokio
//! runtime. Every network call runs with the GIL released.
//!
//! The async operations (`ops`) are plain Rust over `Arc<dyn ObjectStore>`, so the
//! concurrency semantics are unit-tested against the atomic `InMemory` store without
//! Python; the `#[pyclass]` only converts arguments and maps errors onto
//! `reprocas.remote.backend` (`PreconditionFailed`, `RemoteNotFound`,
//! `RemoteUnavailable`, `RemoteError`).

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    BackoffConfig, GetOptions, GetRange, ObjectStore as Store, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, RetryConfig, UpdateVersion,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::runtime::Runtime;

use crate::error::CoreError;

/// Uploads in flight at once in `put_files_if_absent`.
pub const UPLOAD_CONCURRENCY: usize = 8;

/// The one runtime of the extension: two workers, created on first use.
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("reprocas-objstore")
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    })
}

/// What went wrong in one operation, before it becomes a Python exception.
#[derive(Debug)]
pub enum OpError {
    Store(object_store::Error),
    /// A local file could not be read or written.
    Io(CoreError),
    /// A key that is not a valid object path (empty segment, control character ...).
    BadKey(String),
}

impl From<object_store::Error> for OpError {
    fn from(e: object_store::Error) -> Self {
        OpError::Store(e)
    }
}

pub type OpResult<T> = Result<T, OpError>;

/// One object as a listing or a HEAD reports it: key, size, etag, mtime (ns).
pub type Info = (String, u64, String, i64);

pub fn key_path(key: &str) -> OpResult<Path> {
    let path =
        Path::parse(key).map_err(|e| OpError::BadKey(format!("invalid key {key:?}: {e}")))?;
    if path.as_ref() != key {
        // Path::parse strips one leading/trailing "/"; keys are exact.
        return Err(OpError::BadKey(format!(
            "invalid key {key:?}: keys may not start or end with '/'"
        )));
    }
    Ok(path)
}

fn etag_of(e_tag: Option<String>) -> String {
    e_tag.unwrap_or_default()
}

fn info_of(meta: object_store::ObjectMeta) -> Info {
    let ns = meta.last_modified.timestamp_nanos_opt().unwrap_or(0);
    (
        meta.location.to_string(),
        meta.size,
        etag_of(meta.e_tag),
        ns,
    )
}

/// The async operations, independent of Python.
pub mod ops {
    use super::*;
    use futures::{StreamExt, TryStreamExt};
    use tokio::io::AsyncWriteExt;

    pub async fn put_mode(
        store: &dyn Store,
        key: &str,
        data: PutPayload,
        mode: PutMode,
    ) -> OpResult<String> {
        let path = key_path(key)?;
        let res = store.put_opts(&path, data, PutOptions::from(mode)).await?;
        Ok(etag_of(res.e_tag))
    }

    pub fn update_mode(etag: Option<String>) -> PutMode {
        match etag {
            None => PutMode::Create,
            Some(e_tag) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag),
                version: None,
            }),
        }
    }

    /// Create-if-absent: Ok(Some(etag)) when written, Ok(None) when the key existed.
    pub async fn create(
        store: &dyn Store,
        key: &str,
        data: PutPayload,
    ) -> OpResult<Option<String>> {
        match put_mode(store, key, data, PutMode::Create).await {
            Ok(etag) => Ok(Some(etag)),
            Err(OpError::Store(object_store::Error::AlreadyExists { .. }))
            | Err(OpError::Store(object_store::Error::Precondition { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn put_files_if_absent(
        store: Arc<dyn Store>,
        items: Vec<(String, PathBuf)>,
    ) -> OpResult<Vec<bool>> {
        futures::stream::iter(items)
            .map(|(key, file)| {
                let store = Arc::clone(&store);
                async move {
                    key_path(&key)?;
                    let data = tokio::fs::read(&file)
                        .await
                        .map_err(|e| OpError::Io(CoreError::from_io(e, &file)))?;
                    Ok::<bool, OpError>(
                        create(store.as_ref(), &key, PutPayload::from(data))
                            .await?
                            .is_some(),
                    )
                }
            })
            .buffered(UPLOAD_CONCURRENCY)
            .try_collect()
            .await
    }

    pub fn range(start: Option<u64>, end: Option<u64>) -> Option<GetRange> {
        match (start, end) {
            (None, None) => None,
            (Some(s), None) => Some(GetRange::Offset(s)),
            (s, Some(e)) => Some(GetRange::Bounded(s.unwrap_or(0)..e)),
        }
    }

    /// Bytes of KEY (or of [start, end)) and the object's etag.
    pub async fn get(
        store: &dyn Store,
        key: &str,
        start: Option<u64>,
        end: Option<u64>,
    ) -> OpResult<(bytes::Bytes, String)> {
        let path = key_path(key)?;
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                // An empty range is not a request S3 can answer; it still needs the key.
                let meta = store.head(&path).await?;
                return Ok((bytes::Bytes::new(), etag_of(meta.e_tag)));
            }
        }
        let opts = GetOptions {
            range: range(start, end),
            ..Default::default()
        };
        let res = store.get_opts(&path, opts).await?;
        let etag = etag_of(res.meta.e_tag.clone());
        Ok((res.bytes().await?, etag))
    }

    /// Stream KEY into a temporary file beside PATH, fsync it, rename it into place.
    pub async fn get_to_file(store: &dyn Store, key: &str, dest: &FsPath) -> OpResult<u64> {
        let path = key_path(key)?;
        let res = store.get_opts(&path, GetOptions::default()).await?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dest.with_file_name(format!(".{name}.{}.part", std::process::id()));
        let io = |e: std::io::Error, p: &FsPath| OpError::Io(CoreError::from_io(e, p));
        let result: OpResult<u64> = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| io(e, &tmp))?;
            let mut stream = res.into_stream();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(|e| io(e, &tmp))?;
            }
            file.sync_all().await.map_err(|e| io(e, &tmp))?;
            drop(file);
            tokio::fs::rename(&tmp, dest)
                .await
                .map_err(|e| io(e, dest))?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    pub async fn head(store: &dyn Store, key: &str) -> OpResult<Info> {
        Ok(info_of(store.head(&key_path(key)?).await?))
    }

    /// Objects whose key starts with PREFIX (a plain string prefix, not only whole
    /// segments) and is greater than START_AFTER, in ascending byte order.
    pub async fn list(
        store: &dyn Store,
        prefix: &str,
        start_after: Option<&str>,
    ) -> OpResult<Vec<Info>> {
        // object_store lists whole segments: list the directory part, filter the rest.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let dir_path = if dir.is_empty() {
            None
        } else {
            Some(key_path(dir)?)
        };
        let stream = match start_after {
            Some(after) if !after.is_empty() => {
                store.list_with_offset(dir_path.as_ref(), &key_path(after)?)
            }
            _ => store.list(dir_path.as_ref()),
        };
        let metas: Vec<object_store::ObjectMeta> = stream.try_collect().await?;
        let mut out: Vec<Info> = metas
            .into_iter()
            .map(info_of)
            .filter(|i| i.0.starts_with(prefix))
            .filter(|i| start_after.is_none_or(|a| i.0.as_bytes() > a.as_bytes()))
            .collect();
        out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(out)
    }

    pub async fn delete(store: &dyn Store, key: &str) -> OpResult<()> {
        match store.delete(&key_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn client_key(name: &str) -> AmazonS3ConfigKey {
    AmazonS3ConfigKey::from_str(name).expect("a client option object_store knows")
}

/// Parse a duration option: seconds as a float ("2.5").
fn seconds(key: &str, value: &str) -> PyResult<Duration> {
    value
        .trim()
        .trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| bad_param(format!("option {key}={value:?} is not a number of seconds")))
}

fn bad_param(message: String) -> PyErr {
    CoreError::InvalidParams(message).into()
}

/// Build the S3 client: environment first (AWS_* variables as
/// `AmazonS3Builder::from_env`), then OPTIONS, with short bounded retries.
fn build_s3(bucket: &str, options: &HashMap<String, String>) -> PyResult<Arc<dyn Store>> {
    let mut retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_config(client_key("connect_timeout"), "3s")
        .with_config(client_key("timeout"), "300s");
    let mut s3_options: Vec<(AmazonS3ConfigKey, &String)> = Vec::new();
    for (key, value) in options {
        match key.as_str() {
            "max_retries" => {
                retry.max_retries = value.trim().parse().map_err(|_| {
                    bad_param(format!("option max_retries={value:?} is not a count"))
                })?
            }
            "retry_timeout" => retry.retry_timeout = seconds(key, value)?,
            "conditional_put" | "aws_conditional_put" => return Err(bad_param(
                "option conditional_put cannot be changed: remotes rely on If-Match/If-None-Match"
                    .into(),
            )),
            other => {
                let parsed = AmazonS3ConfigKey::from_str(other)
                    .map_err(|_| bad_param(format!("unknown S3 option {other:?}")))?;
                s3_options.push((parsed, value));
            }
        }
    }
    for (key, value) in s3_options {
        builder = builder.with_config(key, value.clone());
    }
    builder = builder
        .with_retry(retry)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    let store = builder
        .build()
        .map_err(|e| bad_param(format!("cannot configure S3 bucket {bucket:?}: {e}")))?;
    Ok(Arc::new(store))
}

/// A bucket (or an atomic in-memory store) the remote protocol reads and writes.
#[pyclass(frozen, module = "reprocas._core")]
pub struct ObjectStore {
    store: Arc<dyn Store>,
    url: String,
}

impl ObjectStore {
    fn err(&self, op: &str, key: &str, e: OpError) -> PyErr {
        op_error(&self.url, op, key, e)
    }

    fn run<T: Send>(
        &self,
        py: Python<'_>,
        op: &str,
        key: &str,
        fut: impl std::future::Future<Output = OpResult<T>> + Send,
    ) -> PyResult<T> {
        py.detach(|| runtime().block_on(fut))
            .map_err(|e| self.err(op, key, e))
    }
}

/// Map an operation's failure onto the `reprocas.remote.backend` exception tree.
pub fn op_error(url: &str, op: &str, key: &str, e: OpError) -> PyErr {
    use object_store::Error as E;
    let (class, message) = match e {
        OpError::Io(core) => return core.into(),
        OpError::BadKey(m) => return CoreError::InvalidArgument(m).into(),
        OpError::Store(err) => {
            let class = match &err {
                E::NotFound { .. } => "RemoteNotFound",
                E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => {
                    "PreconditionFailed"
                }
                E::Generic { .. } | E::JoinError { .. } => "RemoteUnavailable",
                _ => "RemoteError",
            };
            let what = match class {
                "RemoteNotFound" => "no such object".to_string(),
                "PreconditionFailed" => {
                    "precondition failed (the key exists or changed)".to_string()
                }
                "RemoteUnavailable" => format!("remote unavailable: {err}"),
                _ => format!("{err}"),
            };
            (class, format!("{op} {key:?} on {url}: {what}"))
        }
    };
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let module = py.import("reprocas.remote.backend")?;
            let cls = module.getattr(class)?;
            Ok(PyErr::from_value(cls.call1((message.clone(),))?))
        };
        build().unwrap_or_else(|_| PyRuntimeError::new_err(message))
    })
}

#[pymethods]
impl ObjectStore {
    /// An S3 bucket. OPTIONS are object_store's S3 keys (endpoint, region,
    /// access_key_id, secret_access_key, session_token, virtual_hosted_style_request,
    /// skip_signature ...) plus allow_http, timeout, connect_timeout, max_retries,
    /// retry_timeout; AWS_* environment variables fill in the rest. URL is for messages.
    #[new]
    #[pyo3(signature = (bucket, options = None, url = None))]
    fn new(
        bucket: &str,
        options: Option<HashMap<String, String>>,
        url: Option<String>,
    ) -> PyResult<Self> {
        if bucket.is_empty() {
            return Err(PyValueError::new_err("an S3 remote needs a bucket name"));
        }
        let store = build_s3(bucket, &options.unwrap_or_default())?;
        Ok(Self {
            store,
            url: url.unwrap_or_else(|| format!("s3://{bucket}")),
        })
    }

    /// An atomic in-memory store (tests of the protocol's concurrency semantics).
    #[staticmethod]
    #[pyo3(signature = (url = None))]
    fn in_memory(url: Option<String>) -> Self {
        Self {
            store: Arc::new(InMemory::new()),
            url: url.unwrap_or_else(|| "memory://".into()),
        }
    }

    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// Create KEY (If-None-Match: *); its etag. PreconditionFailed if it exists.
    fn put_if_absent(&self, py: Python<'_>, key: &str, data: &[u8]) -> PyResult<String> {
        let payload = PutPayload::from(data.to_vec());
        let store = self.store.as_ref();
        self.run(
            py,
            "create",
            key,
            ops::put_mode(store, key, payload, PutMode::Create),
        )
    }

    /// Replace KEY only if its etag is ETAG (If-Match), or create it when ETAG is None.
    #[pyo3(signature = (key, data, etag))]
    fn put_if_match(
        &self,
        py: Python<'_>,
        key: &str,
        data: &[u8],
        etag: Option<String>,
    ) -> PyResult<String> {
        let payload = PutPayload::from(data.to_vec());
        let mode = ops::update_mode(etag);
        let store = self.store.as_ref();
        self.run(
            py,
            "compare-and-swap",
            key,
            ops::put_mode(store, key, payload, mode),
        )
    }

    /// Write KEY unconditionally; its etag.
    fn put(&self, py: Python<'_>, key: &str, data: &[u8]) -> PyResult<String> {
        let payload = PutPayload::from(data.to_vec());
        let store = self.store.as_ref();
        self.run(
            py,
            "put",
            key,
            ops::put_mode(store, key, payload, PutMode::Overwrite),
        )
    }

    /// Upload each (key, file) with create-if-absent, 8 at a time, each one PUT;
    /// True where uploaded, False where the key existed.
    fn put_files_if_absent(
        &self,
        py: Python<'_>,
        items: Vec<(String, PathBuf)>,
    ) -> PyResult<Vec<bool>> {
        let what = format!("{} files", items.len());
        let fut = ops::put_files_if_absent(Arc::clone(&self.store), items);
        self.run(py, "upload", &what, fut)
    }

    /// The bytes of KEY, or of [START, END).
    #[pyo3(signature = (key, start = None, end = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        start: Option<u64>,
        end: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (data, _) = self.run(
            py,
            "get",
            key,
            ops::get(self.store.as_ref(), key, start, end),
        )?;
        Ok(PyBytes::new(py, &data))
    }

    /// The bytes of KEY and their etag.
    fn get_with_etag<'py>(
        &self,
        py: Python<'py>,
        key: &str,
    ) -> PyResult<(Bound<'py, PyBytes>, String)> {
        let (data, etag) = self.run(
            py,
            "get",
            key,
            ops::get(self.store.as_ref(), key, None, None),
        )?;
        Ok((PyBytes::new(py, &data), etag))
    }

    /// Download KEY into PATH (temporary file, fsync, rename); its size.
    fn get_to_file(&self, py: Python<'_>, key: &str, path: PathBuf) -> PyResult<u64> {
        let store = self.store.as_ref();
        self.run(py, "download", key, ops::get_to_file(store, key, &path))
    }

    /// (key, size, etag, last_modified_ns) of KEY.
    fn head(&self, py: Python<'_>, key: &str) -> PyResult<Info> {
        self.run(py, "head", key, ops::head(self.store.as_ref(), key))
    }

    /// [(key, size, etag, last_modified_ns)] of keys starting with PREFIX and greater
    /// than START_AFTER, ascending.
    #[pyo3(signature = (prefix, start_after = None))]
    fn list(
        &self,
        py: Python<'_>,
        prefix: &str,
        start_after: Option<String>,
    ) -> PyResult<Vec<Info>> {
        let fut = ops::list(self.store.as_ref(), prefix, start_after.as_deref());
        self.run(py, "list", prefix, fut)
    }

    /// Remove KEY; a missing key is not an error.
    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        self.run(py, "delete", key, ops::delete(self.store.as_ref(), key))
    }

    fn __repr__(&self) -> String {
        format!("ObjectStore({:?})", self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::ops;
    use super::*;

    fn memory() -> Arc<dyn Store> {
        Arc::new(InMemory::new())
    }

    fn read_counter(store: &dyn Store, key: &str) -> (u64, String) {
        let (data, etag) = runtime()
            .block_on(ops::get(store, key, None, None))
            .unwrap();
        (std::str::from_utf8(&data).unwrap().parse().unwrap(), etag)
    }

    #[test]
    fn compare_and_swap_increments_are_never_lost() {
        let store = memory();
        let key = "refs/counter";
        runtime()
            .block_on(ops::put_mode(
                store.as_ref(),
                key,
                "0".into(),
                PutMode::Create,
            ))
            .unwrap();
        let threads = 8;
        let per_thread = 25;
        let conflicts: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let store = Arc::clone(&store);
                    s.spawn(move || {
                        let mut lost = 0u64;
                        for _ in 0..per_thread {
                            loop {
                                let (n, etag) = read_counter(store.as_ref(), key);
                                let next = PutPayload::from((n + 1).to_string().into_bytes());
                                let mode = ops::update_mode(Some(etag));
                                let put = ops::put_mode(store.as_ref(), key, next, mode);
                                match runtime().block_on(put) {
                                    Ok(_) => break,
                                    Err(OpError::Store(object_store::Error::Precondition {
                                        ..
                                    })) => lost += 1,
                                    Err(e) => panic!("unexpected error {e:?}"),
                                }
                            }
                        }
                        lost
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        let (n, _) = read_counter(store.as_ref(), key);
        assert_eq!(
            n,
            (threads * per_thread) as u64,
            "{conflicts} CAS conflicts retried"
        );
    }

    #[test]
    fn stale_etag_loses() {
        let store = memory();
        let e1 = runtime()
            .block_on(ops::put_mode(
                store.as_ref(),
                "k",
                "a".into(),
                PutMode::Create,
            ))
            .unwrap();
        let e2 = runtime()
            .block_on(ops::put_mode(
                store.as_ref(),
                "k",
                "b".into(),
                ops::update_mode(Some(e1.clone())),
            ))
            .unwrap();
        assert_ne!(e1, e2);
        let stale = runtime().block_on(ops::put_mode(
            store.as_ref(),
            "k",
            "c".into(),
            ops::update_mode(Some(e1)),
        ));
        assert!(matches!(
            stale,
            Err(OpError::Store(object_store::Error::Precondition { .. }))
        ));
        // None means create-if-absent: the key exists, so it loses too.
        let create = runtime().block_on(ops::put_mode(
            store.as_ref(),
            "k",
            "d".into(),
            ops::update_mode(None),
        ));
        assert!(matches!(
            create,
            Err(OpError::Store(object_store::Error::AlreadyExists { .. }))
        ));
    }

    #[test]
    fn create_if_absent_has_exactly_one_winner() {
        for round in 0..20 {
            let store = memory();
            let key = format!("packs/{round}.pack");
            let winners: Vec<usize> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let store = Arc::clone(&store);
                        let key = key.clone();
                        s.spawn(move || {
                            let data = PutPayload::from(format!("writer {i}").into_bytes());
                            runtime()
                                .block_on(ops::create(store.as_ref(), &key, data))
                                .unwrap()
                                .map(|_| i)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().unwrap())
                    .collect()
            });
            assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
            let (data, _) = runtime()
                .block_on(ops::get(store.as_ref(), &key, None, None))
                .unwrap();
            assert_eq!(&data[..], format!("writer {}", winners[0]).as_bytes());
        }
    }

    #[test]
    fn list_is_a_string_prefix_in_order_after_offset() {
        let store = memory();
        for key in [
            "refs/b:2",
            "refs/a:1",
            "refs/a:3",
            "refs/ab/x",
            "index/0001",
            "refsx",
        ] {
            runtime()
                .block_on(ops::put_mode(
                    store.as_ref(),
                    key,
                    "x".into(),
                    PutMode::Overwrite,
                ))
                .unwrap();
        }
        let keys = |prefix: &str, after: Option<&str>| -> Vec<String> {
            runtime()
                .block_on(ops::list(store.as_ref(), prefix, after))
                .unwrap()
                .into_iter()
                .map(|i| i.0)
                .collect()
        };
        assert_eq!(keys("refs/a", None), ["refs/a:1", "refs/a:3", "refs/ab/x"]);
        assert_eq!(keys("refs/", Some("refs/a:3")), ["refs/ab/x", "refs/b:2"]);
        assert_eq!(keys("", Some("refs/b:2")), ["refsx"]);
        assert!(keys("nothing/", None).is_empty());
    }

    #[test]
    fn ranges_and_missing_keys() {
        let store = memory();
        runtime()
            .block_on(ops::put_mode(
                store.as_ref(),
                "k",
                "0123456789".into(),
                PutMode::Create,
            ))
            .unwrap();
        let get = |s, e| {
            runtime()
                .block_on(ops::get(store.as_ref(), "k", s, e))
                .unwrap()
                .0
        };
        assert_eq!(&get(Some(2), Some(5))[..], b"234");
        assert_eq!(&get(Some(7), None)[..], b"789");
        assert_eq!(&get(None, Some(3))[..], b"012");
        assert_eq!(&get(Some(4), Some(4))[..], b"");
        let missing = runtime().block_on(ops::get(store.as_ref(), "nope", None, None));
        assert!(matches!(
            missing,
            Err(OpError::Store(object_store::Error::NotFound { .. }))
        ));
        runtime()
            .block_on(ops::delete(store.as_ref(), "nope"))
            .unwrap();
        assert!(matches!(key_path("a//b"), Err(OpError::BadKey(_))));
        assert!(matches!(key_path("/a"), Err(OpError::BadKey(_))));
    }
}
