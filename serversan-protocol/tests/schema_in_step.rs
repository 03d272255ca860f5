//! Keeps `docs/report-v1.schema.json` in step with the `Report` type.
//!
//! When the type changes on purpose, regenerate the file with
//! `SERVERSAN_WRITE_SCHEMA=1 cargo test -p serversan-protocol --test schema_in_step`
//! and review the diff like any other change to the wire format.

use std::path::PathBuf;

use serversan_protocol::{Report, report::json_schema};

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/report-v1.schema.json")
}

#[test]
fn docs_schema_matches_the_report_type() {
    let generated = serde_json::to_string_pretty(&json_schema()).expect("schema serializes") + "\n";
    let path = schema_path();
    if std::env::var_os("SERVERSAN_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
    }
    let on_disk = std::fs::read_to_string(&path).expect("docs/report-v1.schema.json exists");
    assert_eq!(
        on_disk, generated,
        "docs/report-v1.schema.json is out of date; see this test's header"
    );
}

#[test]
fn schema_names_every_core_field() {
    let schema = json_schema();
    let props = schema["properties"].as_object().expect("properties");
    for field in [
        "version",
        "collected_at",
        "hostname",
        "os",
        "boot_time",
        "cpu",
        "load",
        "memory",
        "swap",
        "filesystems",
        "network",
        "ipv4",
        "ipv6",
        "process_count",
        "sessions",
        "top_cpu",
        "top_memory",
        "temperatures",
    ] {
        assert!(props.contains_key(field), "schema lacks {field}");
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for field in ["version", "collected_at", "hostname", "memory"] {
        assert!(required.contains(&field), "{field} must be required");
    }
    // The example report must satisfy the schema's required list.
    let example = serde_json::to_value(Report::example(1_700_000_000)).expect("value");
    for field in required {
        assert!(example.get(field).is_some(), "example lacks {field}");
    }
}
