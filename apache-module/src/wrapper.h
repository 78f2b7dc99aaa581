/* The httpd and APR declarations the module uses (input to bindgen). */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "unixd.h"
#include "apr_strings.h"
#include "apr_tables.h"
#include "apr_file_io.h"
#include "ap_mpm.h"
#include "util_script.h"
#include "util_filter.h"
#include "apr_buckets.h"

/* Helpers of the C shim (src/shim.c): httpd macros made callable. */
void wasmpy_shim_log_server(const server_rec *s, int level, const char *msg);
void wasmpy_shim_log_request(const request_rec *r, int level, const char *msg);
void wasmpy_shim_register_hooks(apr_pool_t *p);
extern const command_rec wasmpy_shim_cmds[];
void *wasmpy_shim_get_module_config(ap_conf_vector_t *cv);
void wasmpy_shim_set_module_config(ap_conf_vector_t *cv, void *val);
int wasmpy_shim_send_file(request_rec *r, apr_file_t *fd, apr_off_t offset, apr_size_t length);
void wasmpy_shim_register_filter(const char *name, int input);
int wasmpy_shim_brigade_first(apr_bucket_brigade *bb, const char **data, apr_size_t *len);
void wasmpy_shim_brigade_drop_first(apr_bucket_brigade *bb);
void wasmpy_shim_brigade_append(apr_bucket_brigade *bb, const char *data, apr_size_t len,
                                int flush, int eos);
apr_bucket_brigade *wasmpy_shim_brigade_create(request_rec *r);
int wasmpy_shim_brigade_empty(apr_bucket_brigade *bb);
void wasmpy_shim_brigade_split_first(apr_bucket_brigade *bb, apr_size_t at);
void wasmpy_shim_brigade_move_first(apr_bucket_brigade *from, apr_bucket_brigade *to);
