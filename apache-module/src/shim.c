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
#include "apr_buckets.h"
#include "apr_optional.h"
#include "apr_strings.h"
#include "mod_include.h"

/* Implemented in Rust. */
extern const char *wasmpy_cmd_app(cmd_parms *cmd, void *cfg, const char *prefix, const char *dir);
extern const char *wasmpy_cmd_runtime(cmd_parms *cmd, void *cfg, const char *path);
extern const char *wasmpy_cmd_cache_dir(cmd_parms *cmd, void *cfg, const char *path);
extern const char *wasmpy_cmd_state_dir(cmd_parms *cmd, void *cfg, const char *path);
extern const char *wasmpy_cmd_pool_slots(cmd_parms *cmd, void *cfg, const char *count);
extern const char *wasmpy_cmd_max_memory(cmd_parms *cmd, void *cfg, const char *size);
extern int wasmpy_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
extern int wasmpy_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
extern void wasmpy_child_init(apr_pool_t *pchild, server_rec *s);
extern int wasmpy_translate_name(request_rec *r);
extern int wasmpy_map_to_storage(request_rec *r);
extern int wasmpy_handler(request_rec *r);
extern const char *wasmpy_cmd_tenant(cmd_parms *cmd, void *cfg, const char *dir);
extern const char *wasmpy_cmd_python_handler(cmd_parms *cmd, void *cfg, const char *args);
extern const char *wasmpy_cmd_python_handler_module(cmd_parms *cmd, void *cfg, const char *module);
extern const char *wasmpy_cmd_python_option(cmd_parms *cmd, void *cfg, const char *key, const char *value);
extern const char *wasmpy_cmd_python_flag(cmd_parms *cmd, void *cfg, int on);
extern const char *wasmpy_cmd_python_value(cmd_parms *cmd, void *cfg, const char *value);
extern const char *wasmpy_cmd_python_no_args(cmd_parms *cmd, void *cfg);
extern const char *wasmpy_cmd_python_import(cmd_parms *cmd, void *cfg, const char *module, const char *interp);
extern int wasmpy_phase_post_read(request_rec *r);
extern int wasmpy_phase_trans(request_rec *r);
extern int wasmpy_phase_header_parser(request_rec *r);
extern int wasmpy_phase_access(request_rec *r);
extern int wasmpy_phase_authen(request_rec *r);
extern int wasmpy_phase_authz(request_rec *r);
extern int wasmpy_phase_type(request_rec *r);
extern int wasmpy_phase_fixup(request_rec *r);
extern int wasmpy_phase_log(request_rec *r);
extern const char *wasmpy_cmd_python_filter(cmd_parms *cmd, void *cfg, const char *handler, const char *name);
extern apr_status_t wasmpy_output_filter(ap_filter_t *f, apr_bucket_brigade *bb);
extern int wasmpy_ssi_python(ap_filter_t *f, apr_bucket_brigade *bb, int eval, const char *code);
static void wasmpy_ssi_register(void);
extern apr_status_t wasmpy_input_filter(ap_filter_t *f, apr_bucket_brigade *bb, ap_input_mode_t mode,
                                        apr_read_type_e block, apr_off_t readbytes);

/* The module record is defined in Rust (src/lib.rs) so that it is exported
 * from the cdylib; it points at this table and this hook registration. */
extern module AP_MODULE_DECLARE_DATA wasmpy_module;
void wasmpy_shim_register_filter(const char *name, int input);
#define WASMPY_DYNAMIC_OUTPUT "WASMPY_DYNAMIC_OUTPUT"
#define WASMPY_DYNAMIC_INPUT "WASMPY_DYNAMIC_INPUT"
APLOG_USE_MODULE(wasmpy);

const command_rec wasmpy_shim_cmds[] = {
    AP_INIT_TAKE2("WasmPyApp", wasmpy_cmd_app, NULL, RSRC_CONF,
                  "a URL prefix and a tenant directory (policy.toml + app/)"),
    AP_INIT_TAKE1("WasmPyRuntime", wasmpy_cmd_runtime, NULL, RSRC_CONF,
                  "the runtime directory (gateway.wasm + python/)"),
    AP_INIT_TAKE1("WasmPyCacheDir", wasmpy_cmd_cache_dir, NULL, RSRC_CONF,
                  "directory for the compiled runtime and bytecode caches"),
    AP_INIT_TAKE1("WasmPyStateDir", wasmpy_cmd_state_dir, NULL, RSRC_CONF,
                  "directory for each tenant's private state (sessions, PSP pages, uploads)"),
    AP_INIT_TAKE1("WasmPyPoolSlots", wasmpy_cmd_pool_slots, NULL, RSRC_CONF,
                  "instance slots of the pooling allocator, per Apache child"),
    AP_INIT_TAKE1("WasmPyMaxMemory", wasmpy_cmd_max_memory, NULL, RSRC_CONF,
                  "linear memory of all instances of an Apache child together (e.g. 8GiB)"),
    AP_INIT_TAKE1("WasmPyTenant", wasmpy_cmd_tenant, NULL, RSRC_CONF | ACCESS_CONF,
                  "a tenant directory whose sandbox runs the Python handlers of this scope"),
    /* mod_python's directives, with its names; cmd->info is the phase index
     * of apache-module/src/directives.rs (PHASES). */
    AP_INIT_RAW_ARGS("PythonPostReadRequestHandler", wasmpy_cmd_python_handler, (void *)0, RSRC_CONF,
                     "Python post-read-request handlers: module[::object] ... [| .ext ...]"),
    AP_INIT_RAW_ARGS("PythonTransHandler", wasmpy_cmd_python_handler, (void *)1, RSRC_CONF,
                     "Python translate handlers"),
    AP_INIT_RAW_ARGS("PythonHeaderParserHandler", wasmpy_cmd_python_handler, (void *)2, OR_FILEINFO,
                     "Python header parser handlers"),
    AP_INIT_RAW_ARGS("PythonInitHandler", wasmpy_cmd_python_handler, (void *)3, OR_FILEINFO,
                     "Python init handlers (post-read-request at server level, header parser in a directory)"),
    AP_INIT_RAW_ARGS("PythonAccessHandler", wasmpy_cmd_python_handler, (void *)4, OR_FILEINFO,
                     "Python access handlers"),
    AP_INIT_RAW_ARGS("PythonAuthenHandler", wasmpy_cmd_python_handler, (void *)5, OR_FILEINFO,
                     "Python authentication handlers"),
    AP_INIT_RAW_ARGS("PythonAuthzHandler", wasmpy_cmd_python_handler, (void *)6, OR_FILEINFO,
                     "Python authorization handlers"),
    AP_INIT_RAW_ARGS("PythonTypeHandler", wasmpy_cmd_python_handler, (void *)7, OR_FILEINFO,
                     "Python type handlers"),
    AP_INIT_RAW_ARGS("PythonFixupHandler", wasmpy_cmd_python_handler, (void *)8, OR_FILEINFO,
                     "Python fixup handlers"),
    AP_INIT_RAW_ARGS("PythonHandler", wasmpy_cmd_python_handler, (void *)9, OR_FILEINFO,
                     "Python content handlers"),
    AP_INIT_RAW_ARGS("PythonLogHandler", wasmpy_cmd_python_handler, (void *)10, OR_FILEINFO,
                     "Python log handlers"),
    AP_INIT_RAW_ARGS("PythonCleanupHandler", wasmpy_cmd_python_handler, (void *)11, OR_FILEINFO,
                     "Python cleanup handlers"),
    AP_INIT_TAKE1("PythonHandlerModule", wasmpy_cmd_python_handler_module, NULL, OR_FILEINFO,
                  "a module whose phase functions handle every phase they define"),
    AP_INIT_TAKE12("PythonOption", wasmpy_cmd_python_option, NULL, OR_FILEINFO,
                   "an option for req.get_options(): key [value] (no value unsets it)"),
    AP_INIT_FLAG("PythonDebug", wasmpy_cmd_python_flag, "PythonDebug", OR_FILEINFO,
                 "On: send tracebacks to the client"),
    AP_INIT_FLAG("PythonAutoReload", wasmpy_cmd_python_flag, "PythonAutoReload", OR_FILEINFO,
                 "On (default): reload handler modules that changed"),
    AP_INIT_FLAG("PythonEnablePdb", wasmpy_cmd_python_flag, "PythonEnablePdb", OR_FILEINFO,
                 "accepted and ignored: no debugger in a sandbox"),
    AP_INIT_FLAG("PythonOptimize", wasmpy_cmd_python_flag, "PythonOptimize", RSRC_CONF,
                 "accepted and ignored: the runtime is built once for every tenant"),
    AP_INIT_TAKE1("PythonPath", wasmpy_cmd_python_value, "PythonPath", OR_FILEINFO,
                  "a Python expression for sys.path, evaluated in the sandbox"),
    AP_INIT_TAKE1("PythonInterpreter", wasmpy_cmd_python_value, "PythonInterpreter", OR_FILEINFO,
                  "an interpreter name (within this scope's tenant)"),
    AP_INIT_NO_ARGS("PythonInterpPerDirectory", wasmpy_cmd_python_no_args, "PythonInterpPerDirectory", OR_FILEINFO,
                    "name the interpreter after the requested file's directory"),
    AP_INIT_NO_ARGS("PythonInterpPerDirective", wasmpy_cmd_python_no_args, "PythonInterpPerDirective", OR_FILEINFO,
                    "name the interpreter after the directive's directory"),
    AP_INIT_TAKE2("PythonOutputFilter", wasmpy_cmd_python_filter, NULL, RSRC_CONF | ACCESS_CONF,
                  "a Python output filter: module[::object] and the filter's name"),
    AP_INIT_TAKE2("PythonInputFilter", wasmpy_cmd_python_filter, (void *)1, RSRC_CONF | ACCESS_CONF,
                  "a Python input filter: module[::object] and the filter's name"),
    AP_INIT_TAKE2("PythonImport", wasmpy_cmd_python_import, NULL, RSRC_CONF,
                  "a module to import in each instance before its first handler, and an interpreter name"),
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
    /* mod_python's phases (apache-module/src/phases.rs). */
    ap_hook_post_read_request(wasmpy_phase_post_read, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(wasmpy_phase_trans, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_header_parser(wasmpy_phase_header_parser, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_access_checker(wasmpy_phase_access, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_user_id(wasmpy_phase_authen, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_auth_checker(wasmpy_phase_authz, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_type_checker(wasmpy_phase_type, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_fixups(wasmpy_phase_fixup, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(wasmpy_phase_log, NULL, NULL, APR_HOOK_MIDDLE);
    /* <!--#python exec="..." --> and eval="..." in mod_include's pages. */
    ap_hook_optional_fn_retrieve(wasmpy_ssi_register, NULL, NULL, APR_HOOK_MIDDLE);
    /* The filters a handler registers for its request (req.register_*_filter). */
    wasmpy_shim_register_filter(WASMPY_DYNAMIC_OUTPUT, 0);
    wasmpy_shim_register_filter(WASMPY_DYNAMIC_INPUT, 1);
}

/* Python in server-side includes (apache-module/src/ssi.rs):
 * <!--#python exec="code" --> or <!--#python eval="expression" -->. */
static APR_OPTIONAL_FN_TYPE(ap_ssi_get_tag_and_value) *ssi_get_tag_and_value;

static apr_status_t wasmpy_ssi_handler(include_ctx_t *ctx, ap_filter_t *f, apr_bucket_brigade *bb)
{
    char *tag = NULL, *value = NULL;
    int eval;
    if (!(ctx->flags & SSI_FLAG_PRINTING))
        return APR_SUCCESS;
    if (ctx->argc != 1 || (ctx->flags & SSI_FLAG_NO_EXEC)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, ctx->r,
                      (ctx->flags & SSI_FLAG_NO_EXEC)
                          ? "mod_wasmpy: #python is not allowed here (IncludesNOEXEC)"
                          : "mod_wasmpy: #python takes one argument: exec=\"...\" or eval=\"...\"");
        SSI_CREATE_ERROR_BUCKET(ctx, f, bb);
        return APR_SUCCESS;
    }
    ssi_get_tag_and_value(ctx, &tag, &value, SSI_VALUE_DECODED);
    if (tag == NULL || value == NULL || (strcmp(tag, "exec") != 0 && strcmp(tag, "eval") != 0)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, ctx->r,
                      "mod_wasmpy: #python takes exec=\"...\" or eval=\"...\"");
        SSI_CREATE_ERROR_BUCKET(ctx, f, bb);
        return APR_SUCCESS;
    }
    eval = strcmp(tag, "eval") == 0;
    if (wasmpy_ssi_python(f, bb, eval, value) != 0)
        SSI_CREATE_ERROR_BUCKET(ctx, f, bb);
    return APR_SUCCESS;
}

static void wasmpy_ssi_register(void)
{
    APR_OPTIONAL_FN_TYPE(ap_register_include_handler) *reg =
        APR_RETRIEVE_OPTIONAL_FN(ap_register_include_handler);
    ssi_get_tag_and_value = APR_RETRIEVE_OPTIONAL_FN(ap_ssi_get_tag_and_value);
    if (reg != NULL && ssi_get_tag_and_value != NULL)
        reg("python", wasmpy_ssi_handler);
}

/* Python filters (apache-module/src/filters.rs). */
void wasmpy_shim_register_filter(const char *name, int input)
{
    if (input)
        ap_register_input_filter(name, wasmpy_input_filter, NULL, AP_FTYPE_RESOURCE);
    else
        ap_register_output_filter(name, wasmpy_output_filter, NULL, AP_FTYPE_RESOURCE);
}

/* The first bucket of bb: 0 data (*data, *len set), 1 flush, 2 end of
 * stream, 3 other metadata, -1 none, -2 read error. */
int wasmpy_shim_brigade_first(apr_bucket_brigade *bb, const char **data, apr_size_t *len)
{
    apr_bucket *b;
    if (APR_BRIGADE_EMPTY(bb))
        return -1;
    b = APR_BRIGADE_FIRST(bb);
    if (APR_BUCKET_IS_EOS(b))
        return 2;
    if (APR_BUCKET_IS_FLUSH(b))
        return 1;
    if (APR_BUCKET_IS_METADATA(b))
        return 3;
    return apr_bucket_read(b, data, len, APR_BLOCK_READ) == APR_SUCCESS ? 0 : -2;
}

/* Whether bb has no bucket. */
int wasmpy_shim_brigade_empty(apr_bucket_brigade *bb)
{
    return APR_BRIGADE_EMPTY(bb);
}

/* Split the first bucket of bb after `at` bytes. */
void wasmpy_shim_brigade_split_first(apr_bucket_brigade *bb, apr_size_t at)
{
    if (!APR_BRIGADE_EMPTY(bb))
        apr_bucket_split(APR_BRIGADE_FIRST(bb), at);
}

/* Move the first bucket of `from` to the end of `to`. */
void wasmpy_shim_brigade_move_first(apr_bucket_brigade *from, apr_bucket_brigade *to)
{
    apr_bucket *b;
    if (APR_BRIGADE_EMPTY(from))
        return;
    b = APR_BRIGADE_FIRST(from);
    APR_BUCKET_REMOVE(b);
    APR_BRIGADE_INSERT_TAIL(to, b);
}

/* Delete the first bucket of bb. */
void wasmpy_shim_brigade_drop_first(apr_bucket_brigade *bb)
{
    if (!APR_BRIGADE_EMPTY(bb))
        apr_bucket_delete(APR_BRIGADE_FIRST(bb));
}

/* Append a copy of data (if any), then a flush and/or an end of stream. */
void wasmpy_shim_brigade_append(apr_bucket_brigade *bb, const char *data, apr_size_t len,
                                int flush, int eos)
{
    apr_bucket_alloc_t *a = bb->bucket_alloc;
    if (len > 0)
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(data, len, NULL, a));
    if (flush)
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(a));
    if (eos)
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(a));
}

/* A new empty brigade in r's pool. */
apr_bucket_brigade *wasmpy_shim_brigade_create(request_rec *r)
{
    return apr_brigade_create(r->pool, r->connection->bucket_alloc);
}

/* Macros of httpd made callable. */
void *wasmpy_shim_get_module_config(ap_conf_vector_t *cv)
{
    return ap_get_module_config(cv, &wasmpy_module);
}

void wasmpy_shim_set_module_config(ap_conf_vector_t *cv, void *val)
{
    ap_set_module_config(cv, &wasmpy_module, val);
}

/* Append a file bucket for fd and pass the brigade down the output filters. */
int wasmpy_shim_send_file(request_rec *r, apr_file_t *fd, apr_off_t offset, apr_size_t length)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_brigade_insert_file(bb, fd, offset, length, r->pool);
    return ap_pass_brigade(r->output_filters, bb) == APR_SUCCESS ? 0 : -1;
}


void wasmpy_shim_log_server(const server_rec *s, int level, const char *msg)
{
    ap_log_error(APLOG_MARK, level, 0, s, "%s", msg);
}

void wasmpy_shim_log_request(const request_rec *r, int level, const char *msg)
{
    ap_log_rerror(APLOG_MARK, level, 0, r, "%s", msg);
}
