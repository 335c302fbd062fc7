//! The `hookrelay` binary: everything lives in the library (`cli::main`).

/// mimalloc: the hot path allocates per request (headers, records, JSON);
/// it measured faster than the system allocator under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookrelay::cli::main()
}
