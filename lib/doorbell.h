/*
 * doorbell: the wake-up between consuma-fcgi and consuma-deliverer. After a
 * job is committed, consuma-fcgi sends one empty datagram to a unix socket;
 * the deliverer, blocked in poll(2) on that socket, wakes and claims at once.
 * Best effort by design: the deliverer also polls on a timer, so a lost ring
 * delays a job by at most the poll interval and never loses it.
 */
#ifndef CONSUMA_DOORBELL_H
#define CONSUMA_DOORBELL_H

/* Sends one datagram to path without blocking; silent when nobody listens or
 * the socket's queue is full. Thread safe. */
void doorbell_ring(const char *path);

/* Binds a non-blocking datagram socket at path (replacing a stale socket
 * file) and returns its fd, or -1 with errno set. */
int doorbell_listen(const char *path);

/* Reads and discards every pending datagram; returns how many. */
int doorbell_drain(int fd);

#endif
