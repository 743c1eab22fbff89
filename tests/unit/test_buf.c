/* test_buf.c - capped buffers and the arena. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "arena.h"
#include "buf.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

static void cap_is_hard(void **state)
{
	rn_buf b = RN_BUF_INIT(10);
	(void)state;
	assert_int_equal(rn_buf_puts(&b, "hello"), 0);
	assert_int_equal(rn_buf_puts(&b, "world"), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(rn_buf_putc(&b, '!'), RN_ETOOBIG);
	assert_string_equal(rn_buf_cstr(&b), "helloworld");
	assert_true(b.cap <= 11);
	rn_buf_consume(&b, 5);
	assert_string_equal(rn_buf_cstr(&b), "world");
	assert_int_equal(rn_buf_printf(&b, "%d", 12345), 0);
	assert_string_equal(rn_buf_cstr(&b), "world12345");
	assert_int_equal(rn_buf_printf(&b, "%s", "x"), RN_ETOOBIG);
	rn_buf_free(&b);
}

static void printf_large(void **state)
{
	rn_buf b = RN_BUF_INIT(1 << 20);
	char big[1000];
	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(rn_buf_printf(&b, "<%s>", big), 0);
	assert_int_equal(b.len, 1001);
	char *s = rn_buf_detach(&b);
	assert_int_equal(strlen(s), 1001);
	assert_null(b.ptr);
	free(s);
	s = rn_buf_detach(&b);
	assert_string_equal(s, "");
	free(s);
}

static void arena(void **state)
{
	rn_arena a = RN_ARENA_INIT;
	(void)state;
	char *s = rn_arena_strdup(&a, "abc");
	assert_string_equal(s, "abc");
	for (int i = 0; i < 10000; i++) {
		int *p = rn_arena_alloc(&a, sizeof(int) * 3);
		assert_int_equal(p[0] + p[1] + p[2], 0);
		p[0] = i;
	}
	char *big = rn_arena_alloc(&a, 1 << 20);
	big[(1 << 20) - 1] = 'x';
	assert_string_equal(rn_arena_printf(&a, "%d-%s", 7, "x"), "7-x");
	assert_string_equal(s, "abc");
	rn_arena_free(&a);
	assert_null(a.head);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cap_is_hard),
		cmocka_unit_test(printf_large),
		cmocka_unit_test(arena),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
