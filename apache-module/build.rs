//! Generate Rust bindings for the httpd/APR headers of the Debian apache2-dev
//! package and compile the C shim (module record, directive table).

use std::path::PathBuf;
use std::process::Command;

/// Ask a config tool (`apxs -q INCLUDEDIR`, `apr-1-config --includedir`).
fn query(tool: &str, args: &[&str]) -> Option<PathBuf> {
    let out = Command::new(tool).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| PathBuf::from(text))
}

fn main() {
    let httpd = query("apxs", &["-q", "INCLUDEDIR"])
        .or_else(|| query("/usr/bin/apxs", &["-q", "INCLUDEDIR"]))
        .expect("apxs not found: install apache2-dev");
    let apr = query("apxs", &["-q", "APR_INCLUDEDIR"])
        .or_else(|| query("apr-1-config", &["--includedir"]))
        .expect("APR headers not found: install libapr1-dev");
    println!("cargo:rerun-if-changed=src/wrapper.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-changed=build.rs");

    let bindings = bindgen::Builder::default()
        .header("src/wrapper.h")
        .clang_arg(format!("-I{}", httpd.display()))
        .clang_arg(format!("-I{}", apr.display()))
        .allowlist_function("ap_(setup_client_block|should_client_block|get_client_block|rwrite|rflush|set_content_type|set_content_length|get_server_name|get_server_port|run_http_scheme|server_root_relative|escape_html2|internal_redirect|meets_conditions|set_etag|set_last_modified|update_mtime|discard_request_body|get_basic_auth_pw|construct_url|get_remote_host|add_common_vars|add_cgi_vars|method_number_of|exists_config_define|mpm_query|note_auth_failure|document_root|auth_type|auth_name|get_useragent_host|add_output_filter|add_input_filter|get_brigade|pass_brigade|remove_output_filter|remove_input_filter)")
        .allowlist_function("apr_(pstrdup|pstrndup|table_add|table_set|table_get|table_setn|table_unset|table_clear|pool_cleanup_register|pool_cleanup_null|pool_cleanup_run|palloc|file_open|time_now|brigade_cleanup|pool_userdata_get|pool_userdata_set)")
        .allowlist_function("wasmpy_shim_.*")
        .allowlist_type("module|command_rec|request_rec|server_rec|conn_rec|cmd_parms|apr_table_entry_t|apr_array_header_t|unixd_config_rec|ap_filter_t|ap_input_mode_t|apr_read_type_e")
        .allowlist_var("wasmpy_shim_cmds|MODULE_MAGIC_.*|ap_unixd_config|HTTP_.*|OK|DECLINED|DONE|REQUEST_CHUNKED_DECHUNK|APLOG_.*|M_.*|APR_FOPEN_.*|APR_OS_DEFAULT|REMOTE_.*|AP_MPMQ_.*")
        .derive_default(false)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on the httpd headers");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    bindings.write_to_file(out.join("httpd.rs")).unwrap();

    cc::Build::new()
        .file("src/shim.c")
        .include(&httpd)
        .include(&apr)
        .define("LINUX", None)
        .define("_REENTRANT", None)
        .define("_GNU_SOURCE", None)
        .warnings(true)
        .compile("wasmpy_shim");
    // Keep the module mapped across Apache restarts: Rust statics and
    // thread-locals must not be unloaded under a running process.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
