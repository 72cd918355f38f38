//! The peer corpus (`../shared/fixtures/bankfiles`, skipped with a note when absent) through the real
//! import pipeline on both engines: re-importing any file adds zero rows, and a CSV statement imported
//! as two overlapping halves adds exactly the rows of the whole file.

use std::path::{Path, PathBuf};

use magpie_db::{Db, db_test, users};
use magpie_domain::{Email, PasswordHash, UserId};
use magpie_server::import::{self, ImportReport, ImportRequest};

/// `MAGPIE_SHARED_DIR`, else a `shared` folder next to the repository or one of its ancestors.
fn bankfiles() -> Option<PathBuf> {
    let found = match std::env::var("MAGPIE_SHARED_DIR") {
        Ok(d) => Some(PathBuf::from(d)),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().map(|a| a.join("shared")).find(|p| p.is_dir()),
    }
    .map(|s| s.join("fixtures/bankfiles"))
    .filter(|p| p.join("MANIFEST.json").is_file());
    if found.is_none() {
        eprintln!("note: ../shared/fixtures/bankfiles is absent: the corpus import tests are SKIPPED");
    }
    found
}

/// (path, format) of every corpus file.
fn corpus(dir: &Path) -> Vec<(PathBuf, String)> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("MANIFEST.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().or_else(|| manifest.as_array()).expect("a list of files");
    files
        .iter()
        .map(|f| (dir.join(f["file"].as_str().unwrap()), f["format"].as_str().unwrap_or("").to_owned()))
        .collect()
}

async fn new_user(db: &Db) -> UserId {
    let mut c = db.conn().await.unwrap();
    let email = Email::parse(&format!("c{}@example.com", uuid::Uuid::new_v4().simple())).unwrap();
    let new = users::NewUser { email, password_hash: PasswordHash::new("x"), first_name: None, last_name: None };
    users::create(c.c(), &new).await.unwrap().id
}

async fn import(db: &Db, user: UserId, bytes: Vec<u8>, name: &str) -> Result<ImportReport, import::ImportError> {
    let request = ImportRequest { filename: Some(name.to_owned()), ..ImportRequest::default() };
    let models = tempfile::tempdir().unwrap();
    let config = magpie_server::config::Config {
        model_store: Some(models.path().display().to_string()),
        ..magpie_server::config::Config::default()
    };
    let ml = magpie_server::ml::Ml::new(&config).unwrap();
    import::run(db, &ml, user, bytes.into(), &request, |_| {}).await
}

db_test!(every_corpus_file_reimports_as_zero_new_rows, |db| {
    let Some(dir) = bankfiles() else { return };
    let (mut files, mut rows) = (0, 0);
    for (path, _) in corpus(&dir) {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let user = new_user(db).await;
        // Files the parser refuses (some are meant to be refused) import nothing, and that is all.
        let Ok(first) = import(db, user, bytes.clone(), &name).await else { continue };
        let again = import(db, user, bytes, &name).await.unwrap();
        assert_eq!(again.imported, 0, "{}: a re-import added rows", path.display());
        assert_eq!(again.duplicates, first.imported + first.duplicates, "{}", path.display());
        files += 1;
        rows += first.imported;
    }
    assert!(files > 200 && rows > 1500, "only {files} files / {rows} rows imported");
});

db_test!(corpus_csv_statements_imported_as_overlapping_halves_add_the_whole_file_once, |db| {
    let Some(dir) = bankfiles() else { return };
    let mut checked = 0;
    for (path, format) in corpus(&dir) {
        if format != "csv" {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let whole_user = new_user(db).await;
        let Ok(whole) = import(db, whole_user, bytes.clone(), &name).await else { continue };
        // Only files of one record per line, in UTF-8: the halves are cut at line ends.
        let Ok(text) = String::from_utf8(bytes) else { continue };
        let lines: Vec<&str> = text.lines().collect();
        let header = whole.csv_layout.as_ref().and_then(|l| l.header_line).unwrap_or(0);
        let data = &lines[header.min(lines.len())..];
        let data_rows: Vec<&&str> = data.iter().filter(|l| !l.trim().is_empty()).collect();
        if whole.imported < 6 || data_rows.len() != whole.rows_read {
            continue;
        }
        let third = data.len() / 3;
        let head = &lines[..header.min(lines.len())];
        let first = [head, &data[..2 * third]].concat().join("\n");
        let second = [head, &data[third..]].concat().join("\n");
        let user = new_user(db).await;
        let a = import(db, user, first.into_bytes(), &name).await.unwrap();
        let b = import(db, user, second.into_bytes(), &name).await.unwrap();
        assert_eq!(a.imported + b.imported, whole.imported, "{}: halves {a:?} / {b:?}", path.display());
        assert!(b.duplicates > 0, "{}: the halves overlap", path.display());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} CSV files could be split");
});
