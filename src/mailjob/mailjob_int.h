/*
 * mailjob_int.h - what the two files of the mail job share: reading a
 * stored message back and each recipient's state from a job's result.
 */
#ifndef OB_MAILJOB_INT_H
#define OB_MAILJOB_INT_H

#include "outbox/mailjob.h"

/* Parse the stored message that job j carries. A stored message was
 * checked against the limits when it was accepted: reading it back does
 * not refuse it because the limits changed since. Returns 0 with *m owned
 * by the caller, or OB_EINVAL / OB_ENOMEM with *p (may be NULL) saying
 * why. */
int obi_mail_stored(const ob_job *j, ob_mail **m, ob_problem *p);

/* Fill r[0..ob_mail_rcpt_count(m)) from m's envelope and `result`, the
 * previous attempt's result (NULL: every recipient pending), matched by
 * address. address and type are borrowed from m. */
void obi_mail_rcpts_load(const ob_mail *m, const char *result, ob_mail_rcpt_status *r);

#endif
