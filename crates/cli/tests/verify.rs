//! `revkv verify`: its exit status, its text and JSON reports, and that it sweeps nothing. What
//! the report finds is the engine's `Db::verify`, tested with the engine.

// The engine's test helpers: raw access to a closed store's sled tree, the sample history.
#[path = "../../../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use revkv::{Db, Retention};

use common::{
    flip_a_bit, leave_compaction_unfinished, raw_key, sealed_u64, with_raw_tree,
    write_sample_history,
};

/// A store holding the sample history, closed, in a directory that lives as long as the result.
fn sample_store() -> revkv::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    write_sample_history(&Db::options().retention(Retention::Manual).open(&path)?)?;
    Ok((dir, path))
}

fn revkv_verify(path: &Path, json: bool) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_revkv"));
    command.arg("--data").arg(path).arg("verify");
    if json {
        command.arg("--json");
    }
    command.output().expect("the binary runs")
}

#[test]
fn revkv_verify_exits_zero_on_a_clean_store_and_one_with_its_findings() -> revkv::Result<()> {
    let (_dir, path) = sample_store()?;
    let clean = revkv_verify(&path, false);
    assert!(clean.status.success());
    let text = String::from_utf8_lossy(&clean.stdout);
    assert!(text.starts_with("revision 8 (compacted 2):"), "{text}");
    assert!(text.trim_end().ends_with("clean"), "{text}");

    with_raw_tree(&path, |tree| {
        tree.remove(raw_key::commit_time(4)).expect("sled writes");
    });
    let damaged = revkv_verify(&path, false);
    assert_eq!(damaged.status.code(), Some(1));
    let text = String::from_utf8_lossy(&damaged.stdout);
    assert!(
        text.contains("revisions: revision 4: no commit time stored"),
        "{text}"
    );
    assert_eq!(
        String::from_utf8_lossy(&damaged.stderr).trim(),
        "error: verify found 1 problem"
    );

    let json = revkv_verify(&path, true);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(report["clean"], false);
    assert_eq!(
        report["findings"],
        serde_json::json!([{
            "check": "revisions",
            "location": "revision 4",
            "problem": "no commit time stored",
        }])
    );
    let error: serde_json::Value = serde_json::from_slice(&json.stderr).expect("a JSON error");
    assert_eq!(error["error"]["reason"], "Unverified");
    Ok(())
}

#[test]
fn revkv_verify_reports_damage_in_an_unfinished_compaction_and_sweeps_nothing() -> revkv::Result<()>
{
    let (_dir, path) = sample_store()?;
    leave_compaction_unfinished(&path, 6, 2);
    flip_a_bit(&path, &raw_key::record(6, 0));
    let text = revkv_verify(&path, false);
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with("revision 8 (compacted 6, swept up to 2):"),
        "{text}"
    );
    let json = revkv_verify(&path, true);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(
        (&findings[0]["check"], &findings[0]["location"]),
        (
            &serde_json::json!("decoding"),
            &serde_json::json!("revision 6 (change 0)")
        )
    );
    let problem = findings[0]["problem"].as_str().expect("a problem");
    assert!(
        problem.ends_with("the newest change of key \"c\""),
        "{problem}"
    );
    let swept = with_raw_tree(&path, |tree| {
        tree.get(raw_key::meta("finished_compaction"))
            .expect("sled reads")
    });
    assert_eq!(swept.as_deref(), Some(&sealed_u64(2)[..]), "verify swept");
    Ok(())
}
