/* Monotonic time, for timers and deadlines that must not jump with the wall
 * clock. */
#ifndef SA_CLOCK_H
#define SA_CLOCK_H

/* Seconds since an arbitrary start (CLOCK_MONOTONIC). */
double sa_clock_monotonic(void);

#endif
