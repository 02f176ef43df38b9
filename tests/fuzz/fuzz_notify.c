/*
 * fuzz_notify.c - libFuzzer target: what a node hears on its NOTIFY channel
 * (obi_pg_node_hear). Anyone allowed to NOTIFY on the database can send
 * anything there; the node must never crash on it, and may pass on only
 * what parses: a due time >= 0, or ids with a final state.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

static void on_wake(void *arg, int64_t due)
{
    (void)arg;
    if (due < 0)
        abort();
}

static void on_finished(void *arg, const ob_id *id, ob_state state)
{
    (void)arg, (void)id;
    if (!ob_state_is_final(state))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *msg = malloc(size + 1);
    if (!msg)
        return 0;
    memcpy(msg, data, size);
    msg[size] = '\0';
    store st = {.wake = on_wake, .finished = on_finished};
    pg_node n = {.st = &st};
    memset(n.idhex, 'a', 32); /* "aaaa...": messages from this node are ignored */
    obi_pg_node_hear(&n, msg);
    free(msg);
    return 0;
}
