//! Real filesystems from `/proc/self/mountinfo`, sized with `statvfs`.

use std::collections::HashSet;
use std::ffi::CString;
use std::sync::mpsc;
use std::time::Duration;

use serversan_protocol::report::Filesystem;

/// Types that never hold user data (kernel views, memory-backed, image
/// mounts) and so are never reported.
const PSEUDO_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "nfsd",
    "devfs",
    "iso9660",
    "fuse.snapfuse",
    "erofs",
];

/// Local types whose source is not a device path but which hold real data
/// (network filesystems, below, are the others).
const LOCAL_SOURCELESS_TYPES: &[&str] = &["zfs", "virtiofs", "fuse.mergerfs"];

/// Types that may hang `statvfs` when their server is away; these are
/// sized on a helper thread with a deadline.
const NETWORK_TYPES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "fuse.sshfs",
    "9p",
    "fuse.rclone",
    "lustre",
    "fuse.glusterfs",
    "fuse.ceph",
];

/// How long a network filesystem may take to answer `statvfs`.
const NETWORK_STATVFS_TIMEOUT: Duration = Duration::from_millis(500);

/// One mount worth sizing.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// `major:minor`: bind mounts of one filesystem share it.
    pub device: String,
    pub source: String,
    pub mount_point: String,
    pub fs_type: String,
}

/// The mounts that hold real data, one per device (bind mounts and repeated
/// mounts of the same filesystem are reported once, at the shortest path).
pub fn real_mounts(mountinfo: &str) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = mountinfo
        .lines()
        .filter_map(parse_line)
        .filter(is_real)
        .collect();
    // Shortest mount point first, so "/" wins over "/var/lib/docker/..." for
    // the same device; then keep the first of each device.
    mounts.sort_by(|a, b| {
        a.mount_point
            .len()
            .cmp(&b.mount_point.len())
            .then_with(|| a.mount_point.cmp(&b.mount_point))
    });
    let mut seen = HashSet::new();
    mounts.retain(|m| seen.insert(m.device.clone()));
    mounts
}

fn parse_line(line: &str) -> Option<Mount> {
    // id parent major:minor root mount_point options [optional...] - type source super
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split(' ');
    let device = left.nth(2)?.to_owned();
    let mount_point = unescape(left.nth(1)?);
    let mut right = right.split(' ');
    let fs_type = right.next()?.to_owned();
    let source = right.next().unwrap_or("").to_owned();
    Some(Mount {
        device,
        source,
        mount_point,
        fs_type,
    })
}

fn is_real(m: &Mount) -> bool {
    let fs_type = m.fs_type.as_str();
    if PSEUDO_TYPES.contains(&fs_type) || m.source.starts_with("/dev/loop") {
        return false;
    }
    if fs_type == "overlay" {
        // A container's root is an overlay and is the disk it fills;
        // overlays elsewhere are other containers' views of the same disk.
        return m.mount_point == "/";
    }
    m.source.starts_with('/')
        || LOCAL_SOURCELESS_TYPES.contains(&fs_type)
        || NETWORK_TYPES.contains(&fs_type)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` (octal).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `(total, used)` in bytes, as `df` computes them.
pub fn statvfs(path: &str) -> Option<(u64, u64)> {
    let c = CString::new(path).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    } as u64;
    let total = (st.f_blocks as u64).saturating_mul(frsize);
    let free = (st.f_bfree as u64).saturating_mul(frsize);
    Some((total, total.saturating_sub(free)))
}

/// Sizes every real mount. A network filesystem whose server does not
/// answer within [`NETWORK_STATVFS_TIMEOUT`] is left out rather than
/// hanging the run; local ones are sized inline (no thread).
pub fn filesystems(mountinfo: &str, max: usize, max_path: usize) -> Vec<Filesystem> {
    let mut out = Vec::new();
    for m in real_mounts(mountinfo) {
        if out.len() >= max {
            break;
        }
        let sized = if NETWORK_TYPES.contains(&m.fs_type.as_str()) {
            statvfs_with_deadline(m.mount_point.clone())
        } else {
            statvfs(&m.mount_point)
        };
        let Some((total, used)) = sized else { continue };
        if total == 0 {
            continue;
        }
        out.push(Filesystem {
            mount_point: crate::collect::clean_text(&m.mount_point, max_path),
            fs_type: crate::collect::clean_text(&m.fs_type, 64),
            total,
            used: used.min(total),
        });
    }
    out
}

fn statvfs_with_deadline(path: String) -> Option<(u64, u64)> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("statvfs".into())
        .spawn(move || {
            let _ = tx.send(statvfs(&path));
        })
        .ok()?;
    rx.recv_timeout(NETWORK_STATVFS_TIMEOUT).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
28 27 254:0 /srv /mnt/bind rw,relatime - ext4 /dev/vda rw
29 27 0:25 / /dev/shm rw - tmpfs tmpfs rw
30 27 7:1 / /snap/core/1 ro - squashfs /dev/loop1 ro
31 27 7:2 / /mnt/image ro - ext4 /dev/loop2 ro
32 27 259:1 / /mnt/my\\040disk rw - xfs /dev/nvme0n1p1 rw
33 27 0:50 / /tank - zfs tank/data rw
34 27 0:51 / /mnt/nfs rw shared:5 - nfs4 srv:/export rw
35 27 0:52 / /var/lib/docker/overlay2/x/merged rw - overlay overlay rw
36 27 0:53 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
";

    #[test]
    fn keeps_real_filesystems_once_each() {
        let mounts = real_mounts(SAMPLE);
        let points: Vec<&str> = mounts.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(points, vec!["/", "/tank", "/mnt/nfs", "/mnt/my disk"]);
    }

    #[test]
    fn root_overlay_counts_in_a_container() {
        let mounts = real_mounts("1 0 0:40 / / rw - overlay overlay rw,lowerdir=/x\n");
        assert_eq!(mounts.len(), 1);
    }

    #[test]
    fn statvfs_of_root_is_sane() {
        let (total, used) = statvfs("/").expect("statvfs /");
        assert!(total > 0 && used <= total);
    }
}
