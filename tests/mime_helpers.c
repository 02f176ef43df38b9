/*
 * mime_helpers.c - see mime_helpers.h.
 */
#include <stdlib.h>
#include <string.h>

#include "mime_helpers.h"
#include "outbox/mail.h"
#include "test.h"

GMimeMessage *t_mime_parse(const char *data, size_t len)
{
    ob_mail_init();
    GMimeStream *s = g_mime_stream_mem_new_with_buffer(data, len);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    g_object_unref(s);
    ASSERT(m);
    return m;
}

char *t_mime_content(GMimeObject *part, size_t *len)
{
    GMimeStream *out = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(GMIME_PART(part)), out);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
    char *s = malloc(ba->len + 1);
    memcpy(s, ba->data, ba->len);
    s[ba->len] = '\0';
    *len = ba->len;
    g_object_unref(out);
    return s;
}
