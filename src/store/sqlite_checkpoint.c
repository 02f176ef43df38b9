/*
 * sqlite_checkpoint.c - WAL checkpoints off the commit thread.
 *
 * In WAL mode every commit appends to the WAL, and a checkpoint copies the
 * WAL's pages back into the database file and fsyncs it. SQLite's default
 * runs that checkpoint inside the commit that takes the WAL past 1,000
 * pages: the engine's commit thread — the one writer every acknowledgement
 * waits for — would stop for a copy and an fsync every hundred commits or
 * so, and the fsync of 4 MB of freshly copied pages is the slow part.
 *
 * Here the writer's WAL hook, called after each commit with the WAL's
 * size, wakes a thread of this store's own past CKPT_PAGES; it runs PASSIVE
 * checkpoints on a connection of its own beside the writer (a PASSIVE
 * checkpoint takes no lock a writer or reader waits for), copying pages
 * and fsyncing the database while commits go on.
 *
 * Under a steady load that alone would not do: the WAL starts over only
 * when a checkpoint has copied every frame before the writer's next
 * transaction, and a writer that never pauses always adds frames first.
 * So past CKPT_WRITER pages the writer checkpoints itself after its
 * commit, as SQLite would have: the thread has copied (and synced) nearly
 * all of it by then, so the writer copies a tail and syncs little, and the
 * WAL starts over. One short stop every ~4,000 pages instead of a long one
 * every 1,000.
 *
 * Durability is unchanged: a commit is durable when its WAL frames are
 * synced (synchronous=FULL), whoever copies them later (S1).
 *
 * Invariant K1: the WAL is bounded — it starts over once it passes
 * CKPT_WRITER pages, whether the thread kept up or not (tests/test_crash.c
 * drives 80 MB through it).
 */
#include <string.h>

#include "store/sq.h"

#define CKPT_PAGES 1000  /* wake the checkpointer (SQLite's own default) */
#define CKPT_WRITER 4000 /* K1: the writer checkpoints the rest itself (16 MB) */

/* The writer's WAL hook (commit thread, after each commit). */
static int on_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    sqlite_store *s = arg;
    sq_ckpt *k = &s->ckpt;
    if (pages >= CKPT_WRITER) { /* K1 */
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return SQLITE_OK;
    }
    if (pages >= CKPT_PAGES) {
        pthread_mutex_lock(&k->mu);
        k->want = true;
        pthread_cond_signal(&k->cv);
        pthread_mutex_unlock(&k->mu);
    }
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    sqlite_store *s = arg;
    sq_ckpt *k = &s->ckpt;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->want && !k->stop)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->stop)
            break;
        k->want = false;
        pthread_mutex_unlock(&k->mu);
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            OB_WARN("sqlite: checkpoint of %s failed: %s (the writer takes over past %d pages)",
                    s->path, sqlite3_errmsg(k->db), CKPT_WRITER);
        pthread_mutex_lock(&k->mu);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int obi_sq_ckpt_start(sqlite_store *s)
{
    sq_ckpt *k = &s->ckpt;
    int rc = obi_sq_open_checkpointer(s, &k->db);
    if (rc)
        return rc;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    if (pthread_create(&k->thread, NULL, ckpt_main, s) != 0) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        sqlite3_close(k->db);
        k->db = NULL;
        return OB_ENOMEM;
    }
    k->started = true;
    sqlite3_wal_hook(s->w, on_commit, s); /* replaces wal_autocheckpoint */
    return 0;
}

void obi_sq_ckpt_stop(sqlite_store *s)
{
    sq_ckpt *k = &s->ckpt;
    if (!k->started)
        return;
    sqlite3_wal_hook(s->w, NULL, NULL);
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    sqlite3_close(k->db);
    memset(k, 0, sizeof *k);
}
