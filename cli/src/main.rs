//! `wasmpy`: the tenants' local development server, policy checker and
//! benchmark harness of mod_wasmpy.

mod apache;
mod bench;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wasmpy_sandbox::{EngineSettings, RuntimeFiles, SandboxConfig};

/// mod_wasmpy's command line.
#[derive(Parser)]
#[command(name = "wasmpy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the runtime and caches are.
#[derive(clap::Args, Clone)]
struct RuntimeArgs {
    /// Runtime directory (gateway.wasm + python/) built by python-wasm/build.sh.
    #[arg(long, env = "WASMPY_RUNTIME")]
    runtime: Option<PathBuf>,
    /// Cache directory for the compiled runtime and bytecode.
    #[arg(long, env = "WASMPY_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Directory of each tenant's private state (default: CACHE_DIR/state).
    #[arg(long, env = "WASMPY_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every tenant under TENANTS_DIR, by path prefix /<tenant>/ and by
    /// Host: <tenant>.localhost.
    Serve {
        /// Directory holding one directory per tenant.
        tenants_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: String,
        /// Worker threads.
        #[arg(long, default_value_t = 8)]
        threads: usize,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Validate tenant policies; exits non-zero with the errors. A directory
    /// without policy.toml or app/ is taken as a tenants root.
    Check {
        /// Tenant directories (or tenants roots).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Generate an httpd.conf for the tenants under TENANTS_DIR and run the
    /// Debian Apache with mod_wasmpy in the foreground: /<tenant>/ and
    /// <tenant>.localhost for each tenant, /wasmpy-status for the status page.
    Apache {
        /// Directory holding one directory per tenant.
        tenants_dir: PathBuf,
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Directory for httpd.conf, logs, pid file and caches.
        #[arg(long, default_value = "build/apache-run")]
        run_dir: PathBuf,
        /// Multi-processing module: event or prefork.
        #[arg(long, default_value = "event")]
        mpm: String,
        /// mod_wasmpy.so to load (default: the one built beside this binary).
        #[arg(long)]
        module: Option<PathBuf>,
        /// User (and group) of Apache's children when started as root.
        #[arg(long, default_value = "www-data")]
        user: String,
        /// Only check the generated configuration (apache2 -t).
        #[arg(long)]
        configtest: bool,
        /// Cache directory for the compiled runtime and bytecode (default: RUN_DIR/cache).
        #[arg(long, env = "WASMPY_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// Instances of all tenants together per Apache child (WasmPyPoolSlots).
        #[arg(long)]
        pool_slots: Option<u32>,
        /// Apache child processes (default: 2 under event, 25 threads each;
        /// 8 under prefork).
        #[arg(long)]
        processes: Option<u32>,
        /// Runtime directory (gateway.wasm + python/).
        #[arg(long, env = "WASMPY_RUNTIME")]
        runtime: Option<PathBuf>,
        /// Apache configuration file to include after the module's global
        /// directives, before the first <VirtualHost> (repeatable): its
        /// <Directory>/<Location> sections apply to every virtual host.
        #[arg(long = "conf", value_name = "FILE")]
        conf: Vec<PathBuf>,
    },
    /// Compile the runtime into the cache directory (done on first use otherwise).
    Prepare {
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Benchmark the sandbox API: per-request overhead, cold start of a new
    /// tenant and memory per warm tenant.
    Bench {
        /// Requests for the per-request overhead measurement.
        #[arg(long, default_value_t = 20000)]
        requests: u32,
        /// Tenants for the cold-start and memory measurements.
        #[arg(long, default_value_t = 20)]
        tenants: u32,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
}

impl RuntimeArgs {
    /// The sandbox configuration these arguments describe.
    fn config(&self) -> SandboxConfig {
        let runtime = self.runtime.clone().unwrap_or_else(default_runtime_dir);
        let cache_dir = self
            .cache_dir
            .clone()
            .unwrap_or_else(|| runtime.join("..").join("cache"));
        SandboxConfig {
            runtime: RuntimeFiles::in_dir(&runtime),
            state_dir: self
                .state_dir
                .clone()
                .unwrap_or_else(|| cache_dir.join("state")),
            cache_dir,
            engine: EngineSettings::default(),
            log_sink: None,
        }
    }
}

/// The installed runtime if there is one, else the one built in this checkout.
fn default_runtime_dir() -> PathBuf {
    let installed = Path::new("/usr/share/wasmpy/runtime");
    if installed.join("gateway.wasm").is_file() {
        return installed.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/runtime")
}

/// Tenant directories named by `dirs`, expanding tenants roots.
fn tenant_dirs(dirs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for dir in dirs {
        if dir.join("policy.toml").exists() || dir.join("app").exists() {
            out.push(dir.clone());
        } else {
            for (path, _) in wasmpy_policies::discover_tenants(dir)? {
                out.push(path);
            }
        }
    }
    Ok(out)
}

fn check(dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for dir in tenant_dirs(dirs)? {
        match wasmpy_policies::load_tenant(&dir) {
            Ok(tenant) => println!("ok: {} ({})", tenant.name, tenant.policy.entry),
            Err(errors) => {
                failed = true;
                eprintln!("{errors}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            tenants_dir,
            listen,
            threads,
            runtime,
        } => {
            serve::run(&tenants_dir, &listen, threads, runtime.config()).map(|()| ExitCode::SUCCESS)
        }
        Command::Check { dirs } => check(&dirs),
        Command::Apache {
            tenants_dir,
            port,
            run_dir,
            mpm,
            module,
            user,
            configtest,
            processes,
            cache_dir,
            pool_slots,
            runtime,
            conf,
        } => apache::run(apache::Options {
            pool_slots,
            conf,
            cache_dir: cache_dir.map(|d| std::path::absolute(&d).unwrap_or(d)),
            processes: processes
                .unwrap_or(if mpm == "prefork" { 8 } else { 2 })
                .max(1),
            tenants_dir,
            port,
            run_dir,
            mpm,
            module,
            runtime: runtime.unwrap_or_else(default_runtime_dir),
            user,
            configtest,
        })
        .map(|()| ExitCode::SUCCESS),
        Command::Prepare { runtime } => wasmpy_sandbox::Sandbox::new(runtime.config())
            .map(|_| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Bench {
            requests,
            tenants,
            runtime,
        } => bench::run(requests, tenants, runtime.config()).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("wasmpy: {e:#}");
        ExitCode::FAILURE
    })
}
