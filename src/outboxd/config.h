/*
 * config.h - outboxd's configuration: every setting, and where it comes
 * from (config.c).
 */
#ifndef OUTBOXD_CONFIG_H
#define OUTBOXD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define VERSION OB_VERSION /* the project version, from CMake */

typedef struct config {
    char config_file[1024]; /* the --config FILE read, or empty */
    char listen[256];
    char store[1024];
    char token_file[1024];
    char secret_file[1024];
    char log_file[1024];
    char log_level[16];
    long workers;
    long max_body;
    long max_payload;
    long max_wait;
    long max_connections;
    long threads;
    char smtp[1024];
    char smtp_ca[1024];
    char smtp_helo[256];
    long smtp_pool;
    long smtp_timeout;
    long mail_retry_min;
    long mail_retry_max;
    long mail_lifetime;
    long max_recipients;
    long max_message;
    long max_batch;
    long node_dead;
    char http_allow[4096];
    long http_max_timeout;
    long max_batch_body;
    long max_body_total;
    long max_connections_per_ip;
    long header_timeout;
    long max_event_clients;
    long callback_payload;
    char smtp_password_file[1024];
    char log_format[16];
    char dkim[4096]; /* DOMAIN:SELECTOR:KEYFILE, comma-separated */
} config;

/* Fill *c from, later sources winning: built-in defaults, the --config
 * FILE (lines "name = value", names as the long flags), OUTBOX_*
 * environment variables (OUTBOX_LISTEN, ...), command-line flags (--NAME
 * VALUE). Returns 0; 1 when the program should exit 0 (--help,
 * --version, printed); 2 on a usage error (printed). */
int outboxd_configure(config *c, int argc, char **argv);
/* The host of a HOST:PORT or [V6]:PORT listen address, into host[n]. */
char *outboxd_listen_host(const char *listen, char *host, size_t n);
/* Whether HOST:PORT names only loopback addresses (resolved, then each
 * checked: "127.corp.example" is a name like any other). */
bool outboxd_loopback(const char *listen);
/* s without its leading and trailing white space (in place). */
char *outboxd_trim(char *s);

#endif
