//! The `detail` column of `reports`: the whole report, compact.
//!
//! [`encode`] turns a report into the bytes stored in `detail`, [`decode`]
//! rebuilds it from them and from the row's columns. Lossless: the report
//! rebuilt equals the report stored, unknown fields included, and a figure
//! too large for its BIGINT column (clamped there) stays exact.
//!
//! Format (first byte):
//! - `{`: a row written before compact details, the whole report as JSON
//!   text. Still read; never written.
//! - `1` ([`FORMAT_ZSTD_V1`]): a zstd frame (dictionary
//!   `detail-dictionary-v1.txt`) of the report as compact JSON, in the
//!   report's field order, *without* what the row's columns hold exactly:
//!   `collected_at`, `hostname`, `boot_time`, `cpu.logical_cores` and
//!   `process_count` always; `cpu.usage_percent`, `load`, `memory.*` and
//!   `swap.*` when their column gives them back exactly (a size above
//!   `i64::MAX` is clamped in its column and a negative zero may come back
//!   as 0 from SQLite: those stay in the JSON). [`decode`] takes from the
//!   columns only what the JSON lacks.
//!   So a row's columns are part of its report: nothing may rewrite them
//!   (nothing does; reports are only inserted and deleted).
//! - `2` ([`FORMAT_ZSTD_DELTA`]): a delta against a *keyframe*, an earlier
//!   format-1 row of the same server. After the format byte, how many
//!   seconds the keyframe's `collected_at` lies before the row's own (an
//!   unsigned LEB128 varint, 1 to [`MAX_KEYFRAME_GAP_SECS`]: since
//!   `(server_id, collected_at)` is unique, this names the keyframe's row),
//!   then a zstd frame of the same reduced JSON as format 1, compressed
//!   with the keyframe's reduced JSON as a raw-content dictionary (not the
//!   v1 dictionary). [`keyframe_at`] says which row [`decode`] needs too.
//!   Star-shaped: a delta refers to a format-1 row, never to another
//!   delta, so a read takes exactly one more row. Writers (see
//!   `storage::keyframes`) only encode against a keyframe already
//!   committed, and retention keeps a keyframe while a row may refer to it.
//!
//! Why this form (measured on three sets of reports, see BENCHMARKS.md
//! "Storage size"): JSON already round-trips everything a report can hold
//! (including `extra`, arbitrary JSON from a newer agent), and the agent's
//! two-decimal figures are shorter as text than as 8-byte floats; field
//! names, most of the text, cost almost nothing once a dictionary holds
//! them. Leaving out what the columns hold made the compressed detail 23%
//! (varied reports) to 56% (load generator) smaller: those figures are
//! numbers no dictionary can predict. Deflate with the same preset
//! dictionary came out 12–20 bytes smaller (about 9 of them zstd's frame
//! and block headers); zstd was chosen for fast decoding, a level to trade
//! time for size, and one well-kept crate that takes a dictionary both
//! ways (flate2 needs its zlib backend for preset dictionaries).
//!
//! Why deltas (format 2; measured with `examples/detail_size.rs` on
//! per-host sequences a minute apart): what a fixed dictionary leaves is
//! numbers and names it cannot predict, yet most of them repeat from one
//! report of a host to the next (mount points, interface names, sizes,
//! pids, the leading digits of counters). Against a keyframe up to an hour
//! old, a real host's detail falls from about 300 to 160 bytes (mean) and
//! a varied host's from about 580 to 270, the load generator's from 140 to
//! 85, for about the same time per report to encode and to decode (the
//! keyframe's decompression and loading it as a dictionary included).
//! Adding the v1 dictionary in front of the keyframe made deltas larger
//! (longer offsets) and slower, so a delta uses the keyframe alone.
//! The price: reading a delta needs its keyframe's row, and retention must
//! keep that row as long as the delta.
//!
//! The dictionary belongs to the format: rows written with it can only be
//! read with it, so `detail-dictionary-v1.txt` must never change. A better
//! dictionary (or dropping zstd's 4-byte magic number, which needs zstd's
//! experimental API) is a new format byte with its own file, both kept.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Serialize;
use serde_json::{Map, Value};
use serversan_protocol::Report;
use serversan_protocol::report::{
    Filesystem, Load, NetInterface, Os, ProcessInfo, Session, Temperature,
};

use super::reports::Figures;

/// Format byte of zstd-compressed reduced JSON with dictionary v1.
pub const FORMAT_ZSTD_V1: u8 = 1;

/// Format byte of a delta: the reduced JSON zstd-compressed against a
/// keyframe's (see the module doc).
pub const FORMAT_ZSTD_DELTA: u8 = 2;

/// Longest a delta reaches back: its `collected_at` is at most this many
/// seconds after its keyframe's. Part of the format: retention relies on
/// it to find, within the server's index range, the rows that may still
/// refer to a keyframe.
pub const MAX_KEYFRAME_GAP_SECS: i64 = 45 * 60;

/// First byte of a row written before compact details (plain JSON text).
const LEGACY_JSON: u8 = b'{';

/// Raw-content dictionary of format 1; see the module doc: never change it.
const DICTIONARY_V1: &[u8] = include_bytes!("detail-dictionary-v1.txt");

/// zstd level. Measured on the three sets of `examples/detail_size.rs`
/// (BENCHMARKS.md): level 5 makes details 6–17% smaller than 3 but takes
/// about twice as long to encode (30 µs for large reports on a loaded
/// machine), level 1 saves little time. 5 it is: encoding runs in the
/// serving process, before the batch transaction, and serving processes
/// scale out, while the bytes stay in the one database for the whole
/// retention. The level is not part of the format: changing it needs no
/// new format byte.
const LEVEL: i32 = 5;

/// Most bytes a stored detail may decompress to: far above any report the
/// body limit admits, small enough that a corrupt frame header cannot make
/// a reader allocate without bound.
const MAX_DECODED: usize = 64 << 20;

/// Why a detail could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum DetailError {
    #[error("the detail is empty")]
    Empty,
    #[error("the detail ends after its format byte")]
    Truncated,
    #[error(
        "the detail has format {0:#04x}, which this server does not know (written by a newer version?)"
    )]
    UnknownFormat(u8),
    #[error("the detail does not decompress: {0}")]
    Decompress(std::io::Error),
    #[error("the detail is not a readable report: {0}")]
    Json(serde_json::Error),
    #[error("cannot encode the report: {0}")]
    Encode(String),
    #[error(
        "the detail is a delta against the report collected at {0}, which was not read with it"
    )]
    MissingKeyframe(i64),
    #[error("the detail's keyframe has format {0:#04x}; only format 0x01 can be one")]
    BadKeyframe(u8),
    #[error("the detail's reference to its keyframe is malformed")]
    BadReference,
}

/// What the row's columns hold, which [`decode`] puts back into the report.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    pub collected_at: i64,
    pub figures: &'a Figures,
}

/// The dictionary digested once per process, shared by every thread's
/// context: compressing a small report then only references its tables.
static ENCODER_DICTIONARY: LazyLock<zstd::dict::EncoderDictionary<'static>> =
    LazyLock::new(|| zstd::dict::EncoderDictionary::copy(DICTIONARY_V1, LEVEL));
static DECODER_DICTIONARY: LazyLock<zstd::dict::DecoderDictionary<'static>> =
    LazyLock::new(|| zstd::dict::DecoderDictionary::copy(DICTIONARY_V1));

thread_local! {
    /// One context per thread, reused: no allocation of zstd's tables for
    /// each report.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
    /// Contexts for deltas: their dictionary (a keyframe's JSON, copied in)
    /// changes with every call.
    static DELTA_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DELTA_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// A stored format-1 detail that later reports of the same server may be
/// encoded against, and the `collected_at` of its row (which, with the
/// server, names the row).
#[derive(Debug, Clone, Copy)]
pub struct Keyframe<'a> {
    pub collected_at: i64,
    pub detail: &'a [u8],
}

/// What [`encode_against`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    /// A format-1 detail, which may serve as a keyframe once stored.
    Keyframe(Vec<u8>),
    /// A delta (format 2): readable only with its keyframe's row.
    Delta(Vec<u8>),
}

/// The bytes to store in `detail` for `report`: a format-1 detail, which
/// needs no other row.
pub fn encode(report: &Report) -> Result<Vec<u8>, DetailError> {
    compress_v1(&reduced_json(report)?)
}

/// The bytes to store in `detail` for `report`, a delta against
/// `keyframe` (a stored detail of the same server) when that is worth it:
/// the report is collected after the keyframe, at most
/// [`MAX_KEYFRAME_GAP_SECS`] later, and the delta is less than 3/4 of the
/// keyframe's own size. Otherwise a format-1 detail, which the caller
/// should make the server's next keyframe: the report has drifted from the
/// keyframe. (The keyframe's size stands for the report's own format-1
/// size, which would cost a second compression to know: reports of one
/// server have nearly the same size.)
pub fn encode_against(report: &Report, keyframe: Keyframe<'_>) -> Result<Encoded, DetailError> {
    let json = reduced_json(report)?;
    let gap = report.collected_at.checked_sub(keyframe.collected_at);
    if let Some(gap) = gap.filter(|g| (1..=MAX_KEYFRAME_GAP_SECS).contains(g))
        && let Some((&FORMAT_ZSTD_V1, frame)) = keyframe.detail.split_first()
    {
        // A keyframe that does not decompress (it came from this process's
        // own cache, so it never happens) only costs the delta.
        if let Ok(dictionary) = decompress_v1(frame) {
            let delta = DELTA_COMPRESSOR.with(|cell| {
                let mut slot = cell.borrow_mut();
                let compressor = match &mut *slot {
                    Some(c) => c,
                    None => slot.insert(zstd::bulk::Compressor::new(LEVEL)?),
                };
                // The JSON starts with `{`, never with zstd's dictionary
                // magic number: zstd takes it as raw content.
                compressor.set_dictionary(LEVEL, &dictionary)?;
                compressor.compress(&json)
            });
            let delta = delta.map_err(|e| DetailError::Encode(e.to_string()))?;
            let mut out = Vec::with_capacity(4 + delta.len());
            out.push(FORMAT_ZSTD_DELTA);
            put_varint(&mut out, gap.unsigned_abs());
            out.extend_from_slice(&delta);
            if out.len() * 4 < keyframe.detail.len() * 3 {
                return Ok(Encoded::Delta(out));
            }
        }
    }
    compress_v1(&json).map(Encoded::Keyframe)
}

/// The `collected_at` of the keyframe a detail is a delta against, `None`
/// when it needs no other row. `collected_at` is the detail's own row's.
pub fn keyframe_at(detail: &[u8], collected_at: i64) -> Result<Option<i64>, DetailError> {
    match detail.split_first() {
        Some((&FORMAT_ZSTD_DELTA, rest)) => {
            let (gap, _) = read_varint(rest).ok_or(DetailError::BadReference)?;
            let gap = i64::try_from(gap).map_err(|_| DetailError::BadReference)?;
            collected_at
                .checked_sub(gap)
                .map(Some)
                .ok_or(DetailError::BadReference)
        }
        _ => Ok(None),
    }
}

/// The report's compact JSON, what every format compresses.
fn reduced_json(report: &Report) -> Result<Vec<u8>, DetailError> {
    serde_json::to_vec(&Reduced::new(report)).map_err(|e| DetailError::Encode(e.to_string()))
}

/// A format-1 detail of `json`.
fn compress_v1(json: &[u8]) -> Result<Vec<u8>, DetailError> {
    let compressed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match &mut *slot {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Compressor::with_prepared_dictionary(
                &ENCODER_DICTIONARY,
            )?),
        };
        compressor.compress(json)
    });
    let compressed = compressed.map_err(|e| DetailError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(1 + compressed.len());
    out.push(FORMAT_ZSTD_V1);
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// The size a frame records. Frames written here always record it;
/// allocating that, never a guess, keeps a corrupt header from making a
/// reader allocate the whole cap.
fn frame_size(frame: &[u8]) -> Result<usize, DetailError> {
    if frame.is_empty() {
        // zstd reads no frames as empty output: say what it is.
        return Err(DetailError::Truncated);
    }
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_DECODED as u64 => Ok(size as usize),
        _ => Err(DetailError::Decompress(std::io::Error::other(
            "no valid frame header with the content size",
        ))),
    }
}

/// The JSON in the frame of a format-1 detail.
fn decompress_v1(frame: &[u8]) -> Result<Vec<u8>, DetailError> {
    let size = frame_size(frame)?;
    let json = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match &mut *slot {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::with_prepared_dictionary(
                &DECODER_DICTIONARY,
            )?),
        };
        decompressor.decompress(frame, size)
    });
    json.map_err(DetailError::Decompress)
}

/// The report stored as `detail` in a row with these `columns`.
/// `keyframe` is the detail of the row [`keyframe_at`] names (same
/// server), which a delta cannot be read without; other formats ignore it.
pub fn decode(
    detail: &[u8],
    columns: Columns<'_>,
    keyframe: Option<&[u8]>,
) -> Result<Report, DetailError> {
    let (&format, rest) = detail.split_first().ok_or(DetailError::Empty)?;
    let json = match format {
        LEGACY_JSON => return serde_json::from_slice(detail).map_err(DetailError::Json),
        FORMAT_ZSTD_V1 => decompress_v1(rest)?,
        FORMAT_ZSTD_DELTA => {
            let (_, frame) = read_varint(rest).ok_or(DetailError::BadReference)?;
            let key_at = keyframe_at(detail, columns.collected_at)?.unwrap_or_default();
            let keyframe = keyframe.ok_or(DetailError::MissingKeyframe(key_at))?;
            let dictionary = match keyframe.split_first() {
                Some((&FORMAT_ZSTD_V1, key_frame)) => decompress_v1(key_frame)?,
                Some((&other, _)) => return Err(DetailError::BadKeyframe(other)),
                None => return Err(DetailError::BadKeyframe(0)),
            };
            let size = frame_size(frame)?;
            let json = DELTA_DECOMPRESSOR.with(|cell| {
                let mut slot = cell.borrow_mut();
                let decompressor = match &mut *slot {
                    Some(d) => d,
                    None => slot.insert(zstd::bulk::Decompressor::new()?),
                };
                decompressor.set_dictionary(&dictionary)?;
                decompressor.decompress(frame, size)
            });
            json.map_err(DetailError::Decompress)?
        }
        other => return Err(DetailError::UnknownFormat(other)),
    };
    let mut map: Map<String, Value> = serde_json::from_slice(&json).map_err(DetailError::Json)?;
    restore_held(&mut map, columns);
    serde_json::from_value(Value::Object(map)).map_err(DetailError::Json)
}

/// Appends `v` as an unsigned LEB128 varint (a keyframe a minute back
/// takes 1 byte, 45 minutes back 2).
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An unsigned LEB128 varint at the start of `bytes`, and what follows it;
/// `None` when it is cut off or longer than a `u64`.
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut v: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(b & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && bits > 1 {
            return None;
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Some((v, &bytes[i + 1..]));
        }
    }
    None
}

/// Whether a float column gives back exactly `x`: not for negative zero
/// (SQLite may keep an integral REAL as the integer 0).
fn float_column_exact(x: f64) -> bool {
    x.is_finite() && (x != 0.0 || x.is_sign_positive())
}

/// `Some(v)` when a BIGINT column cannot hold `v` (it is clamped there).
fn beyond_bigint(v: u64) -> Option<u64> {
    (i64::try_from(v).is_err()).then_some(v)
}

/// A report without what the row's columns hold exactly, serialized in the
/// report's own field order (the dictionary's order, which a JSON map
/// would sort away). `collected_at`, `hostname`, `boot_time`,
/// `cpu.logical_cores` and `process_count` always fit their columns.
#[derive(Serialize)]
struct Reduced<'a> {
    version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_version: Option<&'a str>,
    os: &'a Os,
    cpu: ReducedCpu<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<&'a Load>,
    #[serde(skip_serializing_if = "Sizes::is_empty")]
    memory: Sizes,
    #[serde(skip_serializing_if = "Sizes::is_empty")]
    swap: Sizes,
    filesystems: &'a [Filesystem],
    network: &'a [NetInterface],
    ipv4: Option<&'a str>,
    ipv6: Option<&'a str>,
    sessions: &'a [Session],
    top_cpu: &'a [ProcessInfo],
    top_memory: &'a [ProcessInfo],
    temperatures: &'a [Temperature],
    #[serde(flatten)]
    extra: &'a BTreeMap<String, Value>,
}

#[derive(Serialize)]
struct ReducedCpu<'a> {
    model: &'a str,
    frequency_mhz: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_percent: Option<f64>,
}

/// Sizes whose BIGINT column clamps them; usually none.
#[derive(Serialize, Default)]
struct Sizes {
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    available: Option<u64>,
}

impl Sizes {
    fn is_empty(&self) -> bool {
        self.total.is_none() && self.used.is_none() && self.available.is_none()
    }
}

impl<'a> Reduced<'a> {
    fn new(r: &'a Report) -> Self {
        let load_exact = r.load.as_ref().is_none_or(|l| {
            [l.one, l.five, l.fifteen]
                .into_iter()
                .all(float_column_exact)
        });
        Reduced {
            version: r.version,
            agent_version: r.agent_version.as_deref(),
            os: &r.os,
            cpu: ReducedCpu {
                model: &r.cpu.model,
                frequency_mhz: r.cpu.frequency_mhz,
                usage_percent: (!float_column_exact(r.cpu.usage_percent))
                    .then_some(r.cpu.usage_percent),
            },
            load: if load_exact { None } else { r.load.as_ref() },
            memory: Sizes {
                total: beyond_bigint(r.memory.total),
                used: beyond_bigint(r.memory.used),
                available: beyond_bigint(r.memory.available),
            },
            swap: Sizes {
                total: beyond_bigint(r.swap.total),
                used: beyond_bigint(r.swap.used),
                available: None,
            },
            filesystems: &r.filesystems,
            network: &r.network,
            ipv4: r.ipv4.as_deref(),
            ipv6: r.ipv6.as_deref(),
            sessions: &r.sessions,
            top_cpu: &r.top_cpu,
            top_memory: &r.top_memory,
            temperatures: &r.temperatures,
            extra: &r.extra,
        }
    }
}

/// Puts back into a decoded report what [`Reduced`] left out, from the
/// columns; fields present in the JSON win.
fn restore_held(map: &mut Map<String, Value>, columns: Columns<'_>) {
    let f = columns.figures;
    let put = |map: &mut Map<String, Value>, key: &str, value: Value| {
        map.entry(key.to_owned()).or_insert(value);
    };
    let put_nested = |map: &mut Map<String, Value>, parent: &str, fields: &[(&str, Value)]| {
        let entry = map
            .entry(parent.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(inner) = entry {
            for (key, value) in fields {
                inner
                    .entry((*key).to_owned())
                    .or_insert_with(|| value.clone());
            }
        }
    };
    put(map, "collected_at", columns.collected_at.into());
    put(map, "hostname", f.hostname.clone().into());
    put(map, "boot_time", f.boot_time.into());
    put(map, "process_count", f.process_count.into());
    put_nested(
        map,
        "cpu",
        &[
            ("logical_cores", f.cpu_cores.into()),
            ("usage_percent", f.cpu_percent.into()),
        ],
    );
    put_nested(
        map,
        "memory",
        &[
            ("total", f.mem_total.into()),
            ("used", f.mem_used.into()),
            ("available", f.mem_available.into()),
        ],
    );
    put_nested(
        map,
        "swap",
        &[("total", f.swap_total.into()), ("used", f.swap_used.into())],
    );
    let load = match (f.load1, f.load5, f.load15) {
        (Some(one), Some(five), Some(fifteen)) => {
            serde_json::json!({"one": one, "five": five, "fifteen": fifteen})
        }
        _ => Value::Null,
    };
    put(map, "load", load);
}

#[cfg(test)]
mod tests {
    use serversan_protocol::report::{Load, ProcessInfo};

    use super::*;

    /// Encodes `report`, decodes it with the columns a row would hold for
    /// it, and checks both the report and its JSON survived unchanged.
    fn round_trip(report: &Report) -> Vec<u8> {
        let stored = encode(report).expect("encodes");
        assert_eq!(stored[0], FORMAT_ZSTD_V1);
        let figures = Figures::from_report(report);
        let columns = Columns {
            collected_at: report.collected_at,
            figures: &figures,
        };
        let back = decode(&stored, columns, None).expect("decodes");
        assert_eq!(&back, report);
        assert_eq!(
            serde_json::to_string(&back).expect("json"),
            serde_json::to_string(report).expect("json"),
        );
        stored
    }

    /// The JSON inside a format-1 detail.
    fn inner_json(stored: &[u8]) -> Value {
        let json = zstd::bulk::Decompressor::with_dictionary(DICTIONARY_V1)
            .expect("decompressor")
            .decompress(&stored[1..], MAX_DECODED)
            .expect("decompresses");
        serde_json::from_slice(&json).expect("json")
    }

    #[test]
    fn example_round_trips_and_leaves_column_figures_out() {
        let report = Report::example(1_700_000_000);
        let stored = round_trip(&report);
        let inner = inner_json(&stored);
        for key in [
            "collected_at",
            "hostname",
            "boot_time",
            "load",
            "memory",
            "swap",
            "process_count",
        ] {
            assert!(
                inner.get(key).is_none(),
                "{key} should be left to its column"
            );
        }
        assert!(inner["cpu"].get("usage_percent").is_none());
        assert_eq!(inner["cpu"]["model"], "AMD EPYC 7763 64-Core Processor");
        assert!(stored.len() < 300, "{} bytes", stored.len());
    }

    #[test]
    fn values_the_columns_cannot_hold_stay_in_the_detail() {
        let mut r = Report::example(1_700_000_000);
        r.memory.total = u64::MAX; // clamped in its column
        r.memory.used = i64::MAX as u64; // the largest a column holds
        r.memory.available = i64::MAX as u64 + 1;
        r.swap.total = u64::MAX;
        r.cpu.usage_percent = -0.0; // SQLite may give back 0
        r.load = Some(Load {
            one: 5e-324,
            five: -0.0,
            fifteen: 0.1 + 0.2,
        });
        let inner = inner_json(&round_trip(&r));
        assert_eq!(inner["memory"]["total"], u64::MAX);
        assert_eq!(inner["memory"]["available"], i64::MAX as u64 + 1);
        assert!(inner["memory"].get("used").is_none());
        assert!(inner["load"].is_object(), "a negative zero stays in detail");
        assert!(inner["cpu"].get("usage_percent").is_some());
    }

    /// A field added to `Report` must be added to `Reduced` too (or be
    /// restored from a column): otherwise encoding would drop it.
    #[test]
    fn every_report_field_is_kept_or_held_by_a_column() {
        let full = serde_json::to_value(Report::example(1_700_000_000)).expect("json");
        let keys =
            |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
        let mut top = vec![
            "version",
            "agent_version",
            "os",
            "cpu",
            "load",
            "memory",
            "swap",
            "filesystems",
            "network",
            "ipv4",
            "ipv6",
            "sessions",
            "top_cpu",
            "top_memory",
            "temperatures",
            // Held by columns:
            "collected_at",
            "hostname",
            "boot_time",
            "process_count",
        ];
        top.sort_unstable();
        assert_eq!(keys(&full), top);
        assert_eq!(
            keys(&full["cpu"]),
            ["frequency_mhz", "logical_cores", "model", "usage_percent"]
        );
        assert_eq!(keys(&full["memory"]), ["available", "total", "used"]);
        assert_eq!(keys(&full["swap"]), ["total", "used"]);
        assert_eq!(keys(&full["load"]), ["fifteen", "five", "one"]);
    }

    #[test]
    fn unrounded_floats_round_trip() {
        // Floats whose shortest form serde_json's default (fast) parser
        // reads back one unit in the last place off; `float_roundtrip`
        // makes them exact.
        let floats = [
            15.163_051_143_870_499,
            1.142_531_643_999_966_7,
            90.510_460_824_269_61,
            98.045_640_068_930_27,
            0.1 + 0.2,
            1.0 / 3.0,
            9_007_199_254_740_993.0,
            2.225_073_858_507_201_4e-308,
        ];
        let mut r = Report::example(1_700_000_000);
        r.top_cpu = floats
            .iter()
            .map(|&cpu_percent| ProcessInfo {
                pid: 1,
                name: "p".into(),
                cpu_percent,
                memory_bytes: 1,
            })
            .collect();
        r.cpu.frequency_mhz = Some(floats[0]);
        r.cpu.usage_percent = floats[1];
        round_trip(&r);
    }

    #[test]
    fn sparse_report_round_trips() {
        let mut r = Report::example(0);
        r.agent_version = None;
        r.load = None;
        r.cpu.frequency_mhz = None;
        r.ipv4 = None;
        r.ipv6 = None;
        r.filesystems.clear();
        r.network.clear();
        r.sessions.clear();
        r.top_cpu.clear();
        r.top_memory.clear();
        r.temperatures.clear();
        round_trip(&r);
    }

    #[test]
    fn unknown_fields_round_trip() {
        let mut r = Report::example(1_700_000_000);
        r.extra.insert(
            "gpu".into(),
            serde_json::json!({"model": "X", "usage_percent": 3, "big": u64::MAX, "neg": -1.5e300}),
        );
        r.extra.insert(
            "load_extra".into(),
            serde_json::json!([null, true, "s", {}]),
        );
        let inner = inner_json(&round_trip(&r));
        assert_eq!(inner["gpu"]["big"], u64::MAX);
    }

    #[test]
    fn fields_in_the_detail_win_and_absent_ones_come_from_the_columns() {
        let report = Report::example(1_700_000_000);
        let stored = encode(&report).expect("encodes");
        let mut figures = Figures::from_report(&report);
        figures.hostname = "renamed".into();
        figures.process_count = 7;
        figures.load1 = None;
        let back = decode(
            &stored,
            Columns {
                collected_at: 5,
                figures: &figures,
            },
            None,
        )
        .expect("decodes");
        assert_eq!(back.hostname, "renamed");
        assert_eq!(back.process_count, 7);
        assert_eq!(back.collected_at, 5);
        assert_eq!(back.load, None, "a partly null load is no load");
    }

    #[test]
    fn legacy_json_detail_decodes() {
        let report = Report::example(1_700_000_000);
        let legacy = serde_json::to_vec(&report).expect("json");
        let figures = Figures::from_report(&report);
        // Columns that disagree show the legacy JSON is used as it is.
        let mut other = figures.clone();
        other.hostname = "other".into();
        let back = decode(
            &legacy,
            Columns {
                collected_at: 1,
                figures: &other,
            },
            None,
        )
        .expect("decodes");
        assert_eq!(back, report);
    }

    fn decode_err(detail: &[u8]) -> DetailError {
        let figures = Figures::from_report(&Report::example(1));
        decode(
            detail,
            Columns {
                collected_at: 1,
                figures: &figures,
            },
            None,
        )
        .expect_err("must not decode")
    }

    #[test]
    fn bad_details_are_errors() {
        assert!(matches!(decode_err(b""), DetailError::Empty));
        assert!(matches!(
            decode_err(&[3, 1, 2, 3]),
            DetailError::UnknownFormat(3)
        ));
        assert!(matches!(
            decode_err(b"[1]"),
            DetailError::UnknownFormat(b'[')
        ));
        assert!(matches!(decode_err(b"{\"version\":"), DetailError::Json(_)));
        assert!(matches!(
            decode_err(&[FORMAT_ZSTD_V1]),
            DetailError::Truncated
        ));
        assert!(matches!(
            decode_err(&[FORMAT_ZSTD_V1, 0, 1, 2, 3, 4, 5]),
            DetailError::Decompress(_)
        ));
        let stored = encode(&Report::example(1_700_000_000)).expect("encodes");
        for len in 1..stored.len() {
            decode_err(&stored[..len]);
        }
        let mut flipped = stored.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        let figures = Figures::from_report(&Report::example(1_700_000_000));
        // A flipped byte may still decompress; it must never panic, and a
        // report it yields must at least be a report.
        let _ = decode(
            &flipped,
            Columns {
                collected_at: 1,
                figures: &figures,
            },
            None,
        );
        // A frame that does not record its size (this server never writes
        // one): refused before anything is allocated for it.
        let mut no_size =
            zstd::bulk::Compressor::with_dictionary(LEVEL, DICTIONARY_V1).expect("compressor");
        no_size.include_contentsize(false).expect("parameter");
        let mut unsized_frame = vec![FORMAT_ZSTD_V1];
        unsized_frame.extend(
            no_size
                .compress(&serde_json::to_vec(&Report::example(1)).expect("json"))
                .expect("compresses"),
        );
        assert!(matches!(
            decode_err(&unsized_frame),
            DetailError::Decompress(_)
        ));
        // Valid zstd of JSON that is not a report object.
        let mut not_a_report = vec![FORMAT_ZSTD_V1];
        not_a_report.extend(
            zstd::bulk::Compressor::with_dictionary(LEVEL, DICTIONARY_V1)
                .expect("compressor")
                .compress(b"[1,2]")
                .expect("compresses"),
        );
        assert!(matches!(decode_err(&not_a_report), DetailError::Json(_)));
    }

    fn delta_of(report: &Report, key_at: i64, key: &[u8]) -> Vec<u8> {
        let keyframe = Keyframe {
            collected_at: key_at,
            detail: key,
        };
        match encode_against(report, keyframe).expect("encodes") {
            Encoded::Delta(delta) => delta,
            Encoded::Keyframe(_) => panic!("expected a delta"),
        }
    }

    #[test]
    fn a_delta_round_trips_with_its_keyframe_and_only_with_it() {
        let t = 1_700_000_000;
        let key = encode(&Report::example(t)).expect("encodes");
        let mut later = Report::example(t + 60);
        later.cpu.usage_percent = 42.5;
        later.top_cpu[0].memory_bytes += 4096;
        later.filesystems[0].used += 1 << 20;
        let delta = delta_of(&later, t, &key);
        assert_eq!(delta[0], FORMAT_ZSTD_DELTA);
        assert!(
            delta.len() * 2 < key.len(),
            "{} vs {}",
            delta.len(),
            key.len()
        );
        assert_eq!(keyframe_at(&delta, t + 60).expect("reference"), Some(t));
        assert_eq!(keyframe_at(&key, t + 60).expect("reference"), None);
        let figures = Figures::from_report(&later);
        let columns = Columns {
            collected_at: later.collected_at,
            figures: &figures,
        };
        assert_eq!(decode(&delta, columns, Some(&key)).expect("decodes"), later);
        assert!(matches!(
            decode(&delta, columns, None),
            Err(DetailError::MissingKeyframe(at)) if at == t
        ));
        // Star, never a chain: a delta is no keyframe.
        assert!(matches!(
            decode(&delta, columns, Some(&delta)),
            Err(DetailError::BadKeyframe(FORMAT_ZSTD_DELTA))
        ));
        // The varint: 45 minutes back takes 2 bytes.
        let far = Report::example(t + MAX_KEYFRAME_GAP_SECS);
        let delta = delta_of(&far, t, &key);
        assert_eq!(
            keyframe_at(&delta, far.collected_at).expect("reference"),
            Some(t)
        );
        let figures = Figures::from_report(&far);
        let columns = Columns {
            collected_at: far.collected_at,
            figures: &figures,
        };
        assert_eq!(decode(&delta, columns, Some(&key)).expect("decodes"), far);
    }

    #[test]
    fn a_keyframe_is_written_when_a_delta_is_not_worth_it() {
        let t = 1_700_000_000;
        let key = encode(&Report::example(t)).expect("encodes");
        let keyframe = |collected_at, detail| Keyframe {
            collected_at,
            detail,
        };
        let is_keyframe = |report: &Report, key: Keyframe<'_>| {
            matches!(
                encode_against(report, key).expect("encodes"),
                Encoded::Keyframe(k) if k == encode(report).expect("encodes")
            )
        };
        // Not after the keyframe, or too long after it.
        assert!(is_keyframe(&Report::example(t), keyframe(t, &key)));
        assert!(is_keyframe(&Report::example(t - 60), keyframe(t, &key)));
        assert!(is_keyframe(
            &Report::example(t + MAX_KEYFRAME_GAP_SECS + 1),
            keyframe(t, &key)
        ));
        // The keyframe is not a format-1 detail.
        let delta = delta_of(&Report::example(t + 60), t, &key);
        assert!(is_keyframe(
            &Report::example(t + 120),
            keyframe(t + 60, &delta)
        ));
        assert!(is_keyframe(&Report::example(t + 60), keyframe(t, b"")));
        // The report is unlike its keyframe: the delta would not be smaller.
        let mut sparse = Report::example(t);
        sparse.filesystems.clear();
        sparse.network.clear();
        sparse.top_cpu.clear();
        sparse.top_memory.clear();
        sparse.temperatures.clear();
        let small = encode(&sparse).expect("encodes");
        assert!(is_keyframe(&Report::example(t + 60), keyframe(t, &small)));
    }

    #[test]
    fn bad_references_are_errors() {
        for detail in [
            vec![FORMAT_ZSTD_DELTA],
            vec![FORMAT_ZSTD_DELTA, 0x80],
            vec![
                FORMAT_ZSTD_DELTA,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x7f,
            ],
        ] {
            assert!(matches!(
                keyframe_at(&detail, 0),
                Err(DetailError::BadReference)
            ));
            assert!(matches!(decode_err(&detail), DetailError::BadReference));
        }
        assert!(matches!(
            keyframe_at(&[FORMAT_ZSTD_DELTA, 2], i64::MIN),
            Err(DetailError::BadReference)
        ));
        // A delta whose frame is cut off, with its keyframe at hand.
        let t = 1_700_000_000;
        let key = encode(&Report::example(t)).expect("encodes");
        let delta = delta_of(&Report::example(t + 60), t, &key);
        let figures = Figures::from_report(&Report::example(t + 60));
        let columns = Columns {
            collected_at: t + 60,
            figures: &figures,
        };
        for len in 1..delta.len() {
            assert!(decode(&delta[..len], columns, Some(&key)).is_err());
        }
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        assert_eq!(
            decode_err(&[7]).to_string(),
            "the detail has format 0x07, which this server does not know (written by a newer version?)"
        );
    }
}
