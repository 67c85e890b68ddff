/*
 * park: requests that wait for the store without holding a thread.
 *
 * A POST /async whose job is queued for the group committer
 * (store_insert_job_then) is parked: its worker thread goes back to accept
 * the next connection at once, and the request, with everything it holds,
 * waits here. When the committer has made its batch durable (or refused or
 * failed a job of it), it hands each of the batch's requests back with
 * park_release; one eventfd write per batch wakes one worker, which takes
 * every ready request (park_take) and answers them in a row, with its own
 * database connection.
 *
 * Why: a worker that slept on its job's semaphore cost two context
 * switches per request and held one of CONSUMA_FCGI_THREADS threads for a
 * commit and an fsync, so a batch could never hold more jobs than there
 * were threads. Parked requests are bounded by park_new's max: beyond it a
 * worker waits for its job as before.
 *
 * Thread safe: park_release from the committer's thread, the rest from any.
 */
#ifndef CONSUMA_FCGI_PARK_H
#define CONSUMA_FCGI_PARK_H

#include <stdbool.h>
#include <stddef.h>

struct http_exchange;
struct park;

/* At most max requests parked at once. NULL when out of memory or out of
 * file descriptors (then nothing is parked: the caller passes NULL around,
 * and every function here takes it). */
struct park *park_new(size_t max);
void park_free(struct park *p);
/* The eventfd that becomes readable when requests are ready; -1 for NULL. */
int park_fd(const struct park *p);
/* Takes a place for one request; false at the bound (or p NULL): then do
 * not park. */
bool park_enter(struct park *p);
/* Gives back a place taken by park_enter: when the request was not
 * parked after all, or after a ready one has been answered. */
void park_leave(struct park *p);
/* How many places are taken. */
size_t park_count(struct park *p);
/* A parked exchange has two holders: the handler's thread, until it no
 * longer touches x (router_dispatch has returned), and the store, until
 * the outcome is final (the committer may finish first). park_hold makes
 * both hold x; each lets go with park_release, and the second one makes it
 * ready for a worker to answer. */
void park_hold(struct http_exchange *x);
void park_release(struct park *p, struct http_exchange *x);
/* Every ready request, oldest first, linked through park_next; NULL when
 * none is (another worker took them). */
struct http_exchange *park_take(struct park *p);

#endif
