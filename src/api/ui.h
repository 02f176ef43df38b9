/*
 * ui.h - the dashboard's assets, embedded in the binary at build time
 * (cmake/embed_ui.cmake writes the table from ui/), served by ui.c.
 */
#ifndef OB_API_UI_H
#define OB_API_UI_H

#include <stddef.h>

typedef struct obi_ui_asset {
    const char *name; /* "index.html", "app.js", ... */
    const char *type; /* its media type */
    const char *etag; /* "\"<16 hex>\"" of its SHA-256 */
    const unsigned char *data;
    size_t len;
} obi_ui_asset;

extern const obi_ui_asset obi_ui_assets[];
extern const int obi_ui_nassets;

#endif
