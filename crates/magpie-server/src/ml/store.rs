//! Where model files live: an object store (the `object_store` crate), a local folder by default and
//! S3-compatible storage in builds with the `s3` feature, so that every replica reads the same files.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// The model file store.
#[derive(Clone)]
pub struct ModelStore {
    inner: Arc<dyn ObjectStore>,
    /// Where it is, for logs (never holds credentials).
    pub location: String,
}

impl std::fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelStore").field("location", &self.location).finish()
    }
}

impl ModelStore {
    /// Open `spec`: a folder path (created if missing), or `s3://bucket/prefix`.
    pub fn open(spec: &str) -> anyhow::Result<ModelStore> {
        if let Some(rest) = spec.strip_prefix("s3://") {
            return Self::open_s3(rest, spec);
        }
        let dir = spec.strip_prefix("file://").unwrap_or(spec);
        // Model files hold what people spend on what: the folder is the owner's alone.
        crate::files::private_dir(std::path::Path::new(dir))
            .map_err(|e| anyhow::anyhow!("cannot create the model folder {dir}: {e}"))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| anyhow::anyhow!("cannot open the model folder {dir}: {e}"))?;
        Ok(ModelStore { inner: Arc::new(store), location: dir.to_owned() })
    }

    #[cfg(feature = "s3")]
    fn open_s3(rest: &str, spec: &str) -> anyhow::Result<ModelStore> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot open {spec}: {e}"))?;
        let inner: Arc<dyn ObjectStore> =
            if prefix.is_empty() { Arc::new(s3) } else { Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)) };
        Ok(ModelStore { inner, location: spec.to_owned() })
    }

    #[cfg(not(feature = "s3"))]
    fn open_s3(_rest: &str, spec: &str) -> anyhow::Result<ModelStore> {
        anyhow::bail!("model_store {spec}: this build has no S3 support (build with `--features s3`)")
    }

    /// Write a file.
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.inner
            .put(&ObjectPath::from(path), PutPayload::from(bytes))
            .await
            .map_err(|e| anyhow::anyhow!("cannot write model file {path}: {e}"))?;
        Ok(())
    }

    /// Read a file.
    pub async fn get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let got = self
            .inner
            .get(&ObjectPath::from(path))
            .await
            .map_err(|e| anyhow::anyhow!("cannot read model file {path}: {e}"))?;
        let bytes = got.bytes().await.map_err(|e| anyhow::anyhow!("cannot read model file {path}: {e}"))?;
        Ok(bytes.to_vec())
    }

    /// Remove every file under `prefix` (a folder such as `prediction/<user>`); returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<usize> {
        use futures_util::TryStreamExt;
        let prefix = ObjectPath::from(prefix);
        let files: Vec<object_store::ObjectMeta> = self
            .inner
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| anyhow::anyhow!("cannot list model files under {prefix}: {e}"))?;
        for f in &files {
            self.delete(f.location.as_ref()).await?;
        }
        Ok(files.len())
    }

    /// Remove a file (a missing one is not an error).
    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        match self.inner.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(anyhow::anyhow!("cannot delete model file {path}: {e}")),
        }
    }
}
