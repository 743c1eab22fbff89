/* fuzz_dotenv.c - libFuzzer target: parse the input as a command file and as a dotenv file.
 *
 * Checks on every pair: the key is a valid key of the format, the value is NUL-terminated at
 * vlen and no longer than the input; on failure an error message starting "line " is set.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Irunner tests/fuzz/fuzz_dotenv.c
 *        runner/kvfile.c runner/error.c runner/util.c runner/buf.c */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kvfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	rn_kv_format fmt;
	size_t size;
	size_t pairs;
} ctx;

static int check_pair(const char *key, const char *value, size_t vlen, void *payload)
{
	ctx *c = payload;
	size_t kl = strlen(key);
	if (kl == 0 || kl > c->size || vlen > c->size || value[vlen] != '\0')
		abort();
	char k0 = key[0];
	if (!((k0 >= 'A' && k0 <= 'Z') || (k0 >= 'a' && k0 <= 'z') || k0 == '_'))
		abort();
	const char *ok = c->fmt == RN_KV_COMMANDS
				 ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
				 : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
	if (strspn(key, ok) != kl)
		abort();
	c->pairs++;
	/* stop early now and then to exercise the early return */
	return vlen == 13 ? 42 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy so that ASan catches any read past the end */
	char *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	if (size)
		memcpy(copy, data, size);
	for (int f = 0; f < 2; f++) {
		ctx c = { f ? RN_KV_DOTENV : RN_KV_COMMANDS, size, 0 };
		rn_error_clear();
		int rc = rn_kvfile_parse(copy, size, c.fmt, check_pair, &c);
		if (rc != 0 && rc != 42 && rc != RN_EINVALID)
			abort();
		if (rc == RN_EINVALID && strncmp(rn_error_last(), "line ", 5) != 0)
			abort();
		if (c.pairs > size)
			abort();
	}
	free(copy);
	return 0;
}
