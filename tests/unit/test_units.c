/* test_units.c - durations and sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "units.h"
#include "error.h"

#include <string.h>

static void durations(void **state)
{
	static const struct {
		const char *in;
		int64_t ms; /* -1: invalid */
	} rows[] = {
		{ "500ms", 500 }, { "30s", 30000 }, { "10m", 600000 }, { "1h30m", 5400000 }, { "1h", 3600000 },
		{ "1.5s", 1500 }, { "0s", 0 }, { "2d", 172800000 }, { "1m30s", 90000 }, { "1h2m3s4ms", 3723004 },
		{ "", -1 }, { "30", -1 }, { "5 parsecs", -1 }, { "s", -1 }, { "10x", -1 }, { "1s1h", -1 },
		{ "-1s", -1 }, { "1.2.3s", -1 }, { "10 s", -1 }, { "1e3s", -1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t ms = -2;
		int rc = rn_duration_parse(&ms, rows[i].in);
		if (rows[i].ms < 0) {
			if (rc != RN_EINVALID)
				fail_msg("'%s' should be invalid, got %lld", rows[i].in, (long long)ms);
		} else {
			if (rc != 0 || ms != rows[i].ms)
				fail_msg("'%s': rc %d ms %lld, want %lld", rows[i].in, rc, (long long)ms, (long long)rows[i].ms);
		}
	}
	int64_t ms;
	assert_int_equal(rn_duration_parse(&ms, "30"), RN_EINVALID);
	assert_non_null(strstr(rn_error_last(), "no unit"));
}

static void sizes(void **state)
{
	static const struct {
		const char *in;
		int64_t bytes;
	} rows[] = {
		{ "2G", 2LL << 30 }, { "512M", 512LL << 20 }, { "64k", 64LL << 10 }, { "100", 100 }, { "1T", 1LL << 40 },
		{ "2GiB", 2LL << 30 }, { "3MB", 3LL << 20 }, { "7B", 7 }, { "", -1 }, { "2 gigs", -1 }, { "G", -1 },
		{ "-1M", -1 }, { "1.5G", -1 }, { "99999999999999999999T", -1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t b = -2;
		int rc = rn_size_parse(&b, rows[i].in);
		if (rows[i].bytes < 0)
			assert_int_equal(rc, RN_EINVALID);
		else if (rc != 0 || b != rows[i].bytes)
			fail_msg("'%s': rc %d bytes %lld", rows[i].in, rc, (long long)b);
	}
}

static void format(void **state)
{
	char buf[32];
	(void)state;
	rn_duration_format(buf, sizeof(buf), 1234);
	assert_string_equal(buf, "1.234s");
	rn_duration_format(buf, sizeof(buf), 123000);
	assert_string_equal(buf, "2m03s");
	rn_duration_format(buf, sizeof(buf), 3720000);
	assert_string_equal(buf, "1h02m");
	rn_duration_format(buf, sizeof(buf), -5);
	assert_string_equal(buf, "0.000s");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(durations),
		cmocka_unit_test(sizes),
		cmocka_unit_test(format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
