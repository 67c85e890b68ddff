/*
 * doorbell: the wake-up between consuma-fcgi and consuma-deliverer. After a
 * job is committed, consuma-fcgi sends one empty datagram to a unix socket;
 * the deliverer, blocked in poll(2) on that socket, wakes and claims at once.
 * Best effort by design: the deliverer also polls on a timer, so a lost ring
 * delays a job by at most the poll interval and never loses it.
 */
#ifndef CONSUMA_DOORBELL_H
#define CONSUMA_DOORBELL_H

#include <stdint.h>

struct doorbell;

/* A bell that rings the listener at path: one datagram socket and the
 * resolved address, made once per process so a ring is a single sendto(2).
 * NULL when path is empty or too long for a unix socket, or memory ran out.
 * doorbell_free(NULL) is a no-op. */
struct doorbell *doorbell_new(const char *path);
void doorbell_free(struct doorbell *b);

/* Sends one datagram without blocking; silent when nobody listens or the
 * listener's queue is full. b may be NULL (does nothing). Thread safe. */
void doorbell_ring(struct doorbell *b);
/* Rings for the jobs of this process's commit batch `batch`
 * (job_result.batch, counted from 1): unless a ring for that batch or a
 * later one was sent already, by any thread of the process. That ring came
 * after those jobs were durable, so the deliverer's scan after it sees
 * them: one ring per batch, not per job. batch 0 always rings. */
void doorbell_ring_batch(struct doorbell *b, uint64_t batch);

/* Binds a non-blocking datagram socket at path (replacing a stale socket
 * file) and returns its fd, or -1 with errno set. */
int doorbell_listen(const char *path);

/* Reads and discards every pending datagram; returns how many. */
int doorbell_drain(int fd);

#endif
