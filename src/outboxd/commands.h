/*
 * commands.h - outboxd's commands besides serving (commands.c): each
 * returns the process's exit status (0 done, 1 failed, 2 usage).
 */
#ifndef OUTBOXD_COMMANDS_H
#define OUTBOXD_COMMANDS_H

#include "config.h"
#include "outbox/mail.h"

/* outboxd migrate: --store's schema made current; with `from` and `to`
 * (both or neither), an embedded store's jobs moved into PostgreSQL. */
int outboxd_migrate(const config *c, const char *from, const char *to);
/* outboxd backup --to FILE: a consistent copy of --store (SQLite). */
int outboxd_backup(const config *c, const char *to);
/* The --dkim keys, each loaded and checked: *out (NULL when none) is the
 * caller's. Returns 0, OB_EINVAL (said which key and why) or OB_ENOMEM. */
int outboxd_dkim(const config *c, ob_dkim **out);
/* outboxd check: the settings, files, store and relay looked at. */
int outboxd_check(const config *c);

#endif
