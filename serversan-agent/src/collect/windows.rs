//! Windows: a few Win32 calls, chosen among those Wine implements too so the
//! agent can be exercised on Linux (see docs/agent.md for what is tested).
//! No load average, sessions or temperatures: Windows has no cheap source.

use serversan_protocol::report::{Cpu, Filesystem, Memory, NetInterface, Os, Swap};
use serversan_protocol::{Limits, REPORT_VERSION, Report};
use windows_sys::Win32::Foundation::{CloseHandle, FILETIME, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    FreeMibTable, GetIfTable2, IF_TYPE_SOFTWARE_LOOPBACK, MIB_IF_TABLE2,
};
use windows_sys::Win32::NetworkManagement::Ndis::IfOperStatusUp;
use windows_sys::Win32::Storage::FileSystem::{
    GetDiskFreeSpaceExW, GetDriveTypeW, GetLogicalDriveStringsW, GetVolumeInformationW,
};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW, TH32CS_SNAPPROCESS,
};
use windows_sys::Win32::System::ProcessStatus::{K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS};
use windows_sys::Win32::System::Registry::{
    HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD, RRF_RT_REG_SZ, RegGetValueW,
};
use windows_sys::Win32::System::SystemInformation::{
    ComputerNameDnsHostname, GetComputerNameExW, GetNativeSystemInfo, GetTickCount64,
    GlobalMemoryStatusEx, MEMORYSTATUSEX, SYSTEM_INFO,
};
use windows_sys::Win32::System::Threading::{
    GetProcessTimes, GetSystemTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::{Counters, ProcSample, clean_text, unix_now};

/// FILETIME and process times count 100-nanosecond intervals.
const TICKS_PER_SEC: u64 = 10_000_000;
/// `GetDriveTypeW` for a local disk.
const DRIVE_FIXED: u32 = 3;

fn filetime(ft: &FILETIME) -> u64 {
    (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime)
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn from_wide(buf: &[u16]) -> String {
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    String::from_utf16_lossy(&buf[..end])
}

fn logical_cores() -> u32 {
    // SAFETY: SYSTEM_INFO is plain data that the call fills.
    let mut info: SYSTEM_INFO = unsafe { std::mem::zeroed() };
    unsafe { GetNativeSystemInfo(&mut info) };
    info.dwNumberOfProcessors.max(1)
}

pub(crate) fn read_counters() -> Counters {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut idle, mut kernel, mut user) = (zero, zero, zero);
    // SAFETY: three valid out pointers.
    let ok = unsafe { GetSystemTimes(&mut idle, &mut kernel, &mut user) } != 0;
    // Kernel time includes idle time.
    let total = if ok {
        filetime(&kernel) + filetime(&user)
    } else {
        0
    };
    let busy = total.saturating_sub(if ok { filetime(&idle) } else { 0 });
    let now = unix_now();
    // SAFETY: no preconditions.
    let uptime_secs = unsafe { GetTickCount64() } / 1000;
    Counters {
        // Derived from "now - uptime": it may wobble by a second between
        // runs, which the comparison with saved counters tolerates.
        boot_time: now - i64::try_from(uptime_secs).unwrap_or(0),
        taken_at: now,
        cpu_busy: busy,
        cpu_total: total,
        ticks_per_sec: TICKS_PER_SEC,
        cores: logical_cores(),
        processes: processes(),
    }
}

/// Every process the agent may query: name, creation time, CPU time, memory.
fn processes() -> Vec<ProcSample> {
    // SAFETY: a snapshot handle, closed below.
    let snap: HANDLE = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
    if snap == INVALID_HANDLE_VALUE || snap.is_null() {
        return Vec::new();
    }
    let mut out = Vec::new();
    // SAFETY: PROCESSENTRY32W is plain data; dwSize must be set first.
    let mut entry: PROCESSENTRY32W = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<PROCESSENTRY32W>() as u32;
    // SAFETY: valid snapshot and entry.
    let mut more = unsafe { Process32FirstW(snap, &mut entry) } != 0;
    while more {
        let pid = entry.th32ProcessID;
        let (start, ticks, memory_bytes) = process_figures(pid);
        out.push(ProcSample {
            pid,
            start,
            ticks,
            name: clean_text(&from_wide(&entry.szExeFile), 256),
            memory_bytes,
        });
        // SAFETY: as above.
        more = unsafe { Process32NextW(snap, &mut entry) } != 0;
    }
    // SAFETY: the handle came from CreateToolhelp32Snapshot.
    unsafe { CloseHandle(snap) };
    out.sort_by_key(|p| p.pid);
    out
}

/// (creation time, CPU ticks, working set) of one process; zeros for the
/// processes a non-administrator may not open.
fn process_figures(pid: u32) -> (u64, u64, u64) {
    // SAFETY: OpenProcess returns null on failure; closed below.
    let h = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if h.is_null() {
        return (0, 0, 0);
    }
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: valid handle and out pointers.
    let times =
        unsafe { GetProcessTimes(h, &mut created, &mut exited, &mut kernel, &mut user) } != 0;
    // SAFETY: plain data; cb must be set.
    let mut mem: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
    mem.cb = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
    // SAFETY: valid handle and buffer of the stated size.
    let memory = unsafe { K32GetProcessMemoryInfo(h, &mut mem, mem.cb) } != 0;
    // SAFETY: the handle came from OpenProcess.
    unsafe { CloseHandle(h) };
    (
        if times { filetime(&created) } else { 0 },
        if times {
            filetime(&kernel) + filetime(&user)
        } else {
            0
        },
        if memory { mem.WorkingSetSize as u64 } else { 0 },
    )
}

fn registry_string(key: &str, value: &str) -> Option<String> {
    let (key, value) = (wide(key), wide(value));
    let mut buf = [0u16; 256];
    let mut size = (buf.len() * 2) as u32;
    // SAFETY: valid strings and a buffer of `size` bytes.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            std::ptr::null_mut(),
            buf.as_mut_ptr().cast(),
            &mut size,
        )
    };
    (rc == 0)
        .then(|| from_wide(&buf))
        .filter(|s| !s.trim().is_empty())
}

fn registry_dword(key: &str, value: &str) -> Option<u32> {
    let (key, value) = (wide(key), wide(value));
    let mut data = 0u32;
    let mut size = 4u32;
    // SAFETY: valid strings and a 4-byte buffer.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_DWORD,
            std::ptr::null_mut(),
            (&mut data as *mut u32).cast(),
            &mut size,
        )
    };
    (rc == 0).then_some(data)
}

/// "10.0.19045.3803": major.minor.build.revision, from the registry (the
/// version APIs lie to programs without a compatibility manifest).
fn kernel_version(nt: &str) -> String {
    let Some(build) = registry_string(nt, "CurrentBuildNumber") else {
        return String::new();
    };
    let major_minor = match (
        registry_dword(nt, "CurrentMajorVersionNumber"),
        registry_dword(nt, "CurrentMinorVersionNumber"),
    ) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => registry_string(nt, "CurrentVersion").unwrap_or_else(|| "0.0".into()),
    };
    match registry_dword(nt, "UBR") {
        Some(ubr) => format!("{major_minor}.{build}.{ubr}"),
        None => format!("{major_minor}.{build}"),
    }
}

fn hostname() -> String {
    let mut buf = [0u16; 256];
    let mut size = buf.len() as u32;
    // SAFETY: buffer of `size` UTF-16 units.
    let ok =
        unsafe { GetComputerNameExW(ComputerNameDnsHostname, buf.as_mut_ptr(), &mut size) } != 0;
    let name = if ok {
        clean_text(&from_wide(&buf), 256)
    } else {
        String::new()
    };
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// Every fixed drive (C:\, D:\...) with its size and file system.
fn filesystems(max: usize) -> Vec<Filesystem> {
    let mut buf = [0u16; 512];
    // SAFETY: buffer of the stated length.
    let len = unsafe { GetLogicalDriveStringsW(buf.len() as u32, buf.as_mut_ptr()) } as usize;
    buf[..len.min(buf.len())]
        .split(|&c| c == 0)
        .filter(|root| !root.is_empty())
        .filter_map(|root| {
            let mut z: Vec<u16> = root.to_vec();
            z.push(0);
            // SAFETY: NUL-terminated root path.
            if unsafe { GetDriveTypeW(z.as_ptr()) } != DRIVE_FIXED {
                return None;
            }
            let (mut avail, mut total, mut free) = (0u64, 0u64, 0u64);
            // SAFETY: NUL-terminated path and three out pointers.
            if unsafe { GetDiskFreeSpaceExW(z.as_ptr(), &mut avail, &mut total, &mut free) } == 0
                || total == 0
            {
                return None;
            }
            let mut fs_name = [0u16; 64];
            // SAFETY: NUL-terminated path, buffer of the stated length, other
            // outputs not requested.
            let ok = unsafe {
                GetVolumeInformationW(
                    z.as_ptr(),
                    std::ptr::null_mut(),
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    fs_name.as_mut_ptr(),
                    fs_name.len() as u32,
                )
            } != 0;
            Some(Filesystem {
                mount_point: String::from_utf16_lossy(root),
                fs_type: if ok {
                    clean_text(&from_wide(&fs_name), 64)
                } else {
                    String::new()
                },
                total,
                used: total.saturating_sub(free),
            })
        })
        .take(max)
        .collect()
}

/// `FilterInterface` in `MIB_IF_ROW2`'s flag bits: the filter layers
/// Windows stacks on each adapter repeat its counters.
const FILTER_INTERFACE_BIT: u8 = 0b10;

/// Every interface that is up, except loopback and filter layers.
fn network(max: usize) -> Vec<NetInterface> {
    let mut table: *mut MIB_IF_TABLE2 = std::ptr::null_mut();
    // SAFETY: the call allocates the table, freed below with FreeMibTable.
    if unsafe { GetIfTable2(&mut table) } != 0 || table.is_null() {
        return Vec::new();
    }
    // SAFETY: the table holds NumEntries rows starting at Table.
    let rows = unsafe {
        std::slice::from_raw_parts((*table).Table.as_ptr(), (*table).NumEntries as usize)
    };
    let out = rows
        .iter()
        .filter(|r| {
            r.Type != IF_TYPE_SOFTWARE_LOOPBACK
                && r.OperStatus == IfOperStatusUp
                && r.InterfaceAndOperStatusFlags._bitfield & FILTER_INTERFACE_BIT == 0
        })
        .map(|r| NetInterface {
            interface: clean_text(&from_wide(&r.Alias), 256),
            rx_bytes: r.InOctets,
            tx_bytes: r.OutOctets,
        })
        .filter(|n| !n.interface.is_empty())
        .take(max)
        .collect();
    // SAFETY: the table came from GetIfTable2 and is freed once.
    unsafe { FreeMibTable(table.cast()) };
    out
}

pub(crate) fn collect_static(counters: &Counters) -> Report {
    let limits = Limits::default();
    const NT: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion";
    const CPU0: &str = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0";
    // SAFETY: MEMORYSTATUSEX is plain data; dwLength must be set.
    let mut mem: MEMORYSTATUSEX = unsafe { std::mem::zeroed() };
    mem.dwLength = std::mem::size_of::<MEMORYSTATUSEX>() as u32;
    // SAFETY: valid, sized buffer.
    let have_mem = unsafe { GlobalMemoryStatusEx(&mut mem) } != 0;
    let (total, avail) = if have_mem {
        (mem.ullTotalPhys, mem.ullAvailPhys.min(mem.ullTotalPhys))
    } else {
        (0, 0)
    };
    // The page file's share of the commit limit is what Windows calls
    // virtual memory beyond RAM.
    let swap_total = if have_mem {
        mem.ullTotalPageFile.saturating_sub(mem.ullTotalPhys)
    } else {
        0
    };
    let committed = mem.ullTotalPageFile.saturating_sub(mem.ullAvailPageFile);
    let swap_used = committed.saturating_sub(total - avail).min(swap_total);
    let kernel = kernel_version(NT);
    let version = registry_string(NT, "DisplayVersion")
        .or_else(|| registry_string(NT, "CurrentVersion"))
        .unwrap_or_default();
    Report {
        version: REPORT_VERSION,
        collected_at: counters.taken_at,
        hostname: hostname(),
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        os: Os {
            name: clean_text(
                &registry_string(NT, "ProductName").unwrap_or_else(|| "Windows".into()),
                256,
            ),
            version: clean_text(&version, 256),
            kernel: clean_text(&kernel, 256),
            arch: std::env::consts::ARCH.to_owned(),
        },
        boot_time: counters.boot_time.clamp(0, counters.taken_at),
        cpu: Cpu {
            model: clean_text(
                &registry_string(CPU0, "ProcessorNameString")
                    .unwrap_or_else(|| std::env::consts::ARCH.into()),
                256,
            ),
            logical_cores: counters.cores,
            frequency_mhz: registry_dword(CPU0, "~MHz")
                .filter(|&m| m > 0)
                .map(f64::from),
            usage_percent: 0.0,
        },
        load: None,
        memory: Memory {
            total,
            used: total - avail,
            available: avail,
        },
        swap: Swap {
            total: swap_total,
            used: swap_used,
        },
        filesystems: filesystems(limits.max_filesystems),
        network: network(limits.max_interfaces),
        ipv4: None,
        ipv6: None,
        process_count: u32::try_from(counters.processes.len()).unwrap_or(u32::MAX),
        sessions: Vec::new(),
        top_cpu: Vec::new(),
        top_memory: Vec::new(),
        temperatures: Vec::new(),
        extra: Default::default(),
    }
}
