/*
 * faulty_vfs.h - a SQLite VFS for tests that passes everything to the
 * default VFS but can be told to fail writes (as a full disk) or fsyncs
 * (as a dying disk). Register it and point the store at it:
 *     faulty_vfs_register(); obi_store_sqlite_vfs = "faulty";
 */
#ifndef OB_FAULTY_VFS_H
#define OB_FAULTY_VFS_H

#include <stdatomic.h>

extern atomic_int faulty_fail_write; /* writes fail with SQLITE_FULL */
extern atomic_int faulty_fail_sync;  /* fsyncs fail with SQLITE_IOERR_FSYNC */
extern atomic_int faulty_syncs;      /* fsyncs passed through so far */
void faulty_vfs_register(void);

/* Power-loss simulation. With faulty_snapshots on, every fsync of a file
 * through the VFS first copies the file to FILE.durable: a copy taken
 * before the fsync holds only writes that the fsync makes durable. After
 * the writer is killed, faulty_power_loss(db) puts back the .durable copy
 * of the database and its WAL (or removes a file that was never synced)
 * and drops the shared-memory index, as if the machine had lost power. */
extern atomic_int faulty_snapshots;
void faulty_power_loss(const char *db_path);
/* Record the files of a cleanly closed store as its durable state. */
void faulty_durable_baseline(const char *db_path);

#endif
