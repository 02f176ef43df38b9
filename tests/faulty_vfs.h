/*
 * faulty_vfs.h - a SQLite VFS for tests that passes everything to the
 * default VFS but can be told to fail writes (as a full disk) or fsyncs
 * (as a dying disk). Register it and point the store at it:
 *     faulty_vfs_register(); store_sqlite_vfs = "faulty";
 */
#ifndef OB_FAULTY_VFS_H
#define OB_FAULTY_VFS_H

#include <stdatomic.h>

extern atomic_int faulty_fail_write; /* writes fail with SQLITE_FULL */
extern atomic_int faulty_fail_sync;  /* fsyncs fail with SQLITE_IOERR_FSYNC */
extern atomic_int faulty_syncs;      /* fsyncs passed through so far */
void faulty_vfs_register(void);

#endif
