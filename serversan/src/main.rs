/// mimalloc rather than glibc's malloc: at saturation glibc's allocator
/// (`_int_malloc`, `malloc_consolidate`, `unlink_chunk`, `free`) took about
/// a sixth of the server's CPU samples, and mimalloc cut the server's CPU
/// per report by about a tenth (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    serversan::cli::run()
}
