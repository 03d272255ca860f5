//! Temperatures from hwmon, or thermal zones where hwmon has none.

use std::fs;
use std::path::Path;

use serversan_protocol::report::Temperature;

/// Every temperature sensor under `root` (normally `/sys/class`).
pub fn temperatures(root: &Path, max: usize) -> Vec<Temperature> {
    let mut out = hwmon(&root.join("hwmon"), max);
    if out.is_empty() {
        out = thermal_zones(&root.join("thermal"), max);
    }
    out
}

fn hwmon(dir: &Path, max: usize) -> Vec<Temperature> {
    let mut out = Vec::new();
    for chip in sorted_entries(dir) {
        let chip_name = read_trimmed(&chip.join("name")).unwrap_or_else(|| "hwmon".into());
        for file in sorted_entries(&chip) {
            let Some(name) = file.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let Some(index) = name
                .strip_prefix("temp")
                .and_then(|n| n.strip_suffix("_input"))
            else {
                continue;
            };
            let Some(celsius) = millidegrees(&file) else {
                continue;
            };
            let label = read_trimmed(&chip.join(format!("temp{index}_label"))).map_or_else(
                || format!("{chip_name} temp{index}"),
                |l| format!("{chip_name} {l}"),
            );
            out.push(Temperature {
                label: crate::collect::clean_text(&label, 256),
                celsius,
            });
            if out.len() >= max {
                return out;
            }
        }
    }
    out
}

fn thermal_zones(dir: &Path, max: usize) -> Vec<Temperature> {
    sorted_entries(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("thermal_zone"))
        })
        .filter_map(|zone| {
            let celsius = millidegrees(&zone.join("temp"))?;
            let label = read_trimmed(&zone.join("type")).unwrap_or_else(|| "thermal".into());
            Some(Temperature {
                label: crate::collect::clean_text(&label, 256),
                celsius,
            })
        })
        .take(max)
        .collect()
}

/// A sensor value in millidegrees; absurd readings (disconnected probes
/// report -273 or 127000+) are dropped rather than sent.
fn millidegrees(path: &Path) -> Option<f64> {
    let raw: i64 = read_trimmed(path)?.parse().ok()?;
    let c = raw as f64 / 1000.0;
    (-50.0..=150.0).contains(&c).then_some(c)
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn sorted_entries(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hwmon_with_labels_and_falls_back_to_thermal_zones() {
        let root = tempfile::tempdir().expect("tempdir");
        let chip = root.path().join("hwmon/hwmon0");
        fs::create_dir_all(&chip).expect("mkdir");
        fs::write(chip.join("name"), "coretemp\n").expect("w");
        fs::write(chip.join("temp1_input"), "48000\n").expect("w");
        fs::write(chip.join("temp1_label"), "Package id 0\n").expect("w");
        fs::write(chip.join("temp2_input"), "51500\n").expect("w");
        fs::write(chip.join("temp3_input"), "-273000\n").expect("w");
        let t = temperatures(root.path(), 128);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].label, "coretemp Package id 0");
        assert_eq!(t[0].celsius, 48.0);
        assert_eq!(t[1].label, "coretemp temp2");
        assert_eq!(t[1].celsius, 51.5);

        let root = tempfile::tempdir().expect("tempdir");
        let zone = root.path().join("thermal/thermal_zone0");
        fs::create_dir_all(&zone).expect("mkdir");
        fs::write(zone.join("type"), "x86_pkg_temp\n").expect("w");
        fs::write(zone.join("temp"), "45000\n").expect("w");
        fs::create_dir_all(root.path().join("thermal/cooling_device0")).expect("mkdir");
        let t = temperatures(root.path(), 128);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].label, "x86_pkg_temp");
    }
}
