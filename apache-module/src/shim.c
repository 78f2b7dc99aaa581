/*
 * The C side of mod_wasmpy.so: only what httpd's macros make impractical in
 * Rust. The module record (STANDARD20_MODULE_STUFF), the directive table
 * (AP_INIT_* macros), hook registration, and log wrappers (APLOG_MARK, the
 * module index for per-module LogLevel). Every decision is made in Rust
 * (src/lib.rs); these functions only forward.
 */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

/* Implemented in Rust. */
extern const char *wasmpy_cmd_app(cmd_parms *cmd, void *cfg, const char *prefix, const char *dir);
extern const char *wasmpy_cmd_runtime(cmd_parms *cmd, void *cfg, const char *path);
extern const char *wasmpy_cmd_cache_dir(cmd_parms *cmd, void *cfg, const char *path);
extern const char *wasmpy_cmd_pool_slots(cmd_parms *cmd, void *cfg, const char *count);
extern const char *wasmpy_cmd_max_memory(cmd_parms *cmd, void *cfg, const char *size);
extern int wasmpy_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
extern int wasmpy_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
extern void wasmpy_child_init(apr_pool_t *pchild, server_rec *s);
extern int wasmpy_translate_name(request_rec *r);
extern int wasmpy_map_to_storage(request_rec *r);
extern int wasmpy_handler(request_rec *r);

/* The module record is defined in Rust (src/lib.rs) so that it is exported
 * from the cdylib; it points at this table and this hook registration. */
extern module AP_MODULE_DECLARE_DATA wasmpy_module;
APLOG_USE_MODULE(wasmpy);

const command_rec wasmpy_shim_cmds[] = {
    AP_INIT_TAKE2("WasmPyApp", wasmpy_cmd_app, NULL, RSRC_CONF,
                  "a URL prefix and a tenant directory (policy.toml + app/)"),
    AP_INIT_TAKE1("WasmPyRuntime", wasmpy_cmd_runtime, NULL, RSRC_CONF,
                  "the runtime directory (gateway.wasm + python/)"),
    AP_INIT_TAKE1("WasmPyCacheDir", wasmpy_cmd_cache_dir, NULL, RSRC_CONF,
                  "directory for the compiled runtime and bytecode caches"),
    AP_INIT_TAKE1("WasmPyPoolSlots", wasmpy_cmd_pool_slots, NULL, RSRC_CONF,
                  "instance slots of the pooling allocator, per Apache child"),
    AP_INIT_TAKE1("WasmPyMaxMemory", wasmpy_cmd_max_memory, NULL, RSRC_CONF,
                  "linear memory of all instances of an Apache child together (e.g. 8GiB)"),
    {NULL}
};

void wasmpy_shim_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(wasmpy_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(wasmpy_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(wasmpy_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* Before mod_alias, as WSGIScriptAlias does. */
    ap_hook_translate_name(wasmpy_translate_name, NULL, NULL, APR_HOOK_FIRST);
    /* Our URLs are not files: skip the <Directory> walk, as mod_proxy does. */
    ap_hook_map_to_storage(wasmpy_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(wasmpy_handler, NULL, NULL, APR_HOOK_MIDDLE);
}


void wasmpy_shim_log_server(const server_rec *s, int level, const char *msg)
{
    ap_log_error(APLOG_MARK, level, 0, s, "%s", msg);
}

void wasmpy_shim_log_request(const request_rec *r, int level, const char *msg)
{
    ap_log_rerror(APLOG_MARK, level, 0, r, "%s", msg);
}
