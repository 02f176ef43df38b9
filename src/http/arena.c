/*
 * arena.c - request memory. Allocation bumps a pointer in a chunk; chunks
 * double in size up to the request's limit; everything goes at once when
 * the response is done.
 *
 * The Q&A's "the request is valid only until the handler returns" is
 * enforced here: when the handler returns, obi_arena_poison() runs the cleanup
 * hooks (parsed JSON is released), then marks every chunk unusable — ASan
 * poisoning when built with AddressSanitizer (a later access is reported as
 * use-after-poison, with the stack of the offender), a 0xdb fill in other
 * debug builds (OB_POISON). The memory itself is released by obi_arena_free()
 * when the response is done.
 */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define CHUNK_MIN 4096

struct arena_chunk {
    arena_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

struct arena_hook {
    void (*fn)(void *);
    void *arg;
    arena_hook *next;
};

void obi_arena_init(arena *a, size_t limit)
{
    memset(a, 0, sizeof *a);
    a->limit = limit;
}

void *obi_arena_alloc(arena *a, size_t n)
{
    if (a->poisoned)
        return NULL;
    n = (n + 15) & ~(size_t)15;
    arena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = c ? c->size * 2 : CHUNK_MIN;
        if (size < n)
            size = n;
        if (a->total + size > a->limit) {
            if (a->total + n > a->limit)
                return NULL;
            size = n; /* what is left, no more */
        }
        c = malloc(sizeof *c + size);
        if (!c)
            return NULL;
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        a->total += size;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *obi_arena_strndup(arena *a, const char *s, size_t n)
{
    char *d = obi_arena_alloc(a, n + 1);
    if (d && n)
        memcpy(d, s, n);
    return d;
}

int obi_arena_on_poison(arena *a, void (*fn)(void *), void *arg)
{
    arena_hook *h = malloc(sizeof *h);
    if (!h)
        return OB_ENOMEM;
    *h = (arena_hook){fn, arg, a->hooks};
    a->hooks = h;
    return 0;
}

static void run_hooks(arena *a)
{
    while (a->hooks) {
        arena_hook *h = a->hooks;
        a->hooks = h->next;
        h->fn(h->arg);
        free(h);
    }
}

void obi_arena_poison(arena *a)
{
    if (a->poisoned)
        return;
    run_hooks(a);
    a->poisoned = true;
    for (arena_chunk *c = a->head; c; c = c->next) {
#ifdef OB_POISON
        memset(c->data, 0xdb, c->size);
#endif
#ifdef ARENA_ASAN
        ASAN_POISON_MEMORY_REGION(c->data, c->size);
#endif
    }
}

void obi_arena_free(arena *a)
{
    run_hooks(a);
    while (a->head) {
        arena_chunk *c = a->head;
        a->head = c->next;
#ifdef ARENA_ASAN
        ASAN_UNPOISON_MEMORY_REGION(c->data, c->size);
#endif
        free(c);
    }
    a->total = 0;
}
