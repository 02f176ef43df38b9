/*
 * fuzz_job.c - libFuzzer target over what an enqueue takes in. The input
 * is cut into fields (kind, queue, unique key, payload, search terms,
 * numbers); the job is checked, and when the check passes it is enqueued,
 * read back and compared byte for byte, and found by its first search
 * term. Bad input must be refused with a field name and change nothing;
 * good input must round-trip exactly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "outbox/jobs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ob_engine *engine;

static void noop(ob_job_ctx *ctx, void *arg)
{
    (void)arg;
    ob_ctx_done(ctx, NULL);
}

static void setup(void)
{
    char dir[] = "/tmp/ob-fuzz-XXXXXX", url[64];
    if (!mkdtemp(dir))
        abort();
    snprintf(url, sizeof url, "sqlite:%s/fuzz.db", dir);
    ob_log_set(NULL, NULL, OB_LOG_ERROR);
    ob_engine_opts o;
    ob_engine_opts_init(&o);
    o.max_payload = 4096;
    if (ob_engine_open(url, &o, &engine) || ob_engine_register(engine, "k", noop, NULL, NULL) ||
        ob_engine_register(engine, "mail.send", noop, NULL, NULL))
        abort();
}

/* Take the next field: bytes up to a 0xff separator (or the end). */
static char *field(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *q = *p;
    while (q < end && *q != 0xff)
        q++;
    *len = (size_t)(q - *p);
    char *f = malloc(*len + 1);
    memcpy(f, *p, *len);
    f[*len] = '\0';
    *p = q < end ? q + 1 : q;
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!engine)
        setup();
    const uint8_t *p = data, *end = data + size;
    int32_t nums[4] = {0};
    if (size >= sizeof nums) {
        memcpy(nums, p, sizeof nums);
        p += sizeof nums;
    }
    size_t kl, ql, ul, pl, tl;
    char *kind = field(&p, end, &kl), *queue = field(&p, end, &ql);
    char *key = field(&p, end, &ul), *payload = field(&p, end, &pl);
    char *terms = field(&p, end, &tl);
    ob_new_job j = {
        .kind = kind,
        .queue = ql ? queue : NULL,
        .unique_key = ul ? key : NULL,
        .payload = payload,
        .payload_len = pl,
        .priority = nums[0] % 2048,
        .max_attempts = nums[1] % 1100,
        .timeout_ms = nums[2],
        .run_at_ms = nums[3] < 0 ? nums[3] : 0,
        .terms = tl ? terms : NULL,
    };
    ob_problem why = {"", ""};
    int rc = ob_new_job_check(engine, &j, &why);
    if (rc) {
        if (!why.field[0] || !why.message[0])
            abort(); /* every refusal names its field and says why */
    } else {
        ob_id id;
        bool existed;
        if (ob_enqueue(engine, &j, &id, &existed))
            abort();
        ob_job *g = NULL;
        if (ob_job_get(engine, &id, &g))
            abort();
        if (!existed && (g->payload_len != pl || memcmp(g->payload, payload, pl) != 0 ||
                         strcmp(g->kind, kind) != 0 || g->priority != j.priority))
            abort();
        if (j.unique_key && strcmp(g->unique_key, key) != 0)
            abort();
        ob_job_free(g);
        if (j.terms && !existed) { /* the newest job with its first term is this one */
            terms[strcspn(terms, "\n")] = '\0';
            ob_list_filter f = {.term = terms, .limit = 1};
            ob_job_page *pg;
            if (ob_job_list(engine, &f, &pg) || pg->n != 1 || memcmp(pg->jobs[0]->id.b, id.b, 16))
                abort();
            ob_job_page_free(pg);
        }
    }
    free(kind);
    free(queue);
    free(key);
    free(payload);
    free(terms);
    return 0;
}
