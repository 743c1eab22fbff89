/* mask.h - secret masking for every output path: values, their base64 and URL-encoded forms, and
 * each line of multi-line values are replaced by "***", also when split across writes. */
#ifndef RN_MASK_H
#define RN_MASK_H

#include <stddef.h>

typedef struct rn_masker rn_masker;       /* the set of secret strings */
typedef struct rn_maskstream rn_maskstream; /* per-output-stream streaming state */

/* Called with masked bytes, in order. */
typedef void (*rn_mask_emit)(const char *data, size_t len, void *payload);

/* A new empty masker; caller frees with rn_masker_free. */
rn_masker *rn_masker_new(void);
/* Free a masker (NULL is fine). Streams made from it must be freed first. */
void rn_masker_free(rn_masker *m);
/* Add a secret value (and its base64, base64url, URL-encoded forms and each of its lines of
 * 4+ characters). RN_EINVALID if the value is shorter than 4 bytes (rn_error_last says why). */
int rn_masker_add(rn_masker *m, const char *value);
/* Number of secret values added (not counting derived forms). */
size_t rn_masker_count(const rn_masker *m);
/* Length of the longest string masked (0 if none). */
size_t rn_masker_maxlen(const rn_masker *m);
/* A masked copy of s[0..len) (NUL-terminated, caller frees); *outlen may be NULL. */
char *rn_mask_buf(const rn_masker *m, const char *s, size_t len, size_t *outlen);
/* A masked copy of the string s; caller frees. */
char *rn_mask_str(const rn_masker *m, const char *s);

/* A stream that masks bytes written in any split and passes them to emit; holds back at most
 * rn_masker_maxlen()-1 bytes that could start a secret. Caller frees with rn_maskstream_free. */
rn_maskstream *rn_maskstream_new(const rn_masker *m, rn_mask_emit emit, void *payload);
/* Feed bytes. */
void rn_maskstream_write(rn_maskstream *s, const char *data, size_t len);
/* Emit whatever is held back (end of stream). */
void rn_maskstream_flush(rn_maskstream *s);
/* Free the stream (does not flush). */
void rn_maskstream_free(rn_maskstream *s);

#endif
