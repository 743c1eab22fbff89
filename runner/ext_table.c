/* ext_table.c - what runner-ext.so exports: the table of its implementations (see ext.h). */
#include "agent.h"
#include "archiver.h"
#include "client.h"
#include "ext.h"
#include "http.h"
#include "server.h"

static const rn_ext_command commands[] = {
	{ "serve", rn_cmd_serve, rn_cmd_serve_help },
	{ "agent", rn_cmd_agent, rn_cmd_agent_help },
	{ "submit", rn_cmd_submit, rn_cmd_submit_help },
	{ "status", rn_cmd_status, rn_cmd_status_help },
	{ "logs", rn_cmd_logs, rn_cmd_logs_help },
	{ "cancel", rn_cmd_cancel, rn_cmd_cancel_help },
};

/* The one exported symbol of runner-ext.so (everything else in it has hidden visibility). */
__attribute__((visibility("default"))) extern const rn_ext_api rn_ext_table;
__attribute__((visibility("default"))) const rn_ext_api rn_ext_table = {
	.abi = RN_EXT_ABI,
	.version = RN_VERSION,
	.http_request = rn_http_request,
	.http_upload_file = rn_http_upload_file,
	.http_resp_free = rn_http_resp_free,
	.http_header_ok = rn_http_header_ok,
	.http_url_redacted = rn_http_url_redacted,
	.archive_create = rn_archive_create,
	.archive_extract = rn_archive_extract,
	.archive_extract_limit = rn_archive_extract_limit,
	.sha256_file = rn_sha256_file,
	.commands = commands,
	.ncommands = sizeof(commands) / sizeof(commands[0]),
};
