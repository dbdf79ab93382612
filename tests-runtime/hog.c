/*
 * hog: allocate and touch memory, for real OOM kills in integration tests.
 *
 *   hog MIB [DELAY_SECONDS [MIB_PER_SECOND]]
 *
 * Waits DELAY_SECONDS first (fractions allowed; gives a test time to look at
 * the process before it dies), then maps MIB mebibytes one at a time and writes
 * to every page so each one is charged to the memory cgroup: as fast as it can,
 * or at MIB_PER_SECOND (a leak, for the warnings before the kill). Exits 0 and
 * says so only if the kernel let it keep all of it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1L << 20)

static int usage(void)
{
	fputs("usage: hog MIB [DELAY_SECONDS [MIB_PER_SECOND]]\n", stderr);
	return 2;
}

int main(int argc, char **argv)
{
	char *end;
	long mib, page = sysconf(_SC_PAGESIZE);
	double delay = 0, rate = 0;
	struct timespec start;

	if (argc < 2 || argc > 4)
		return usage();
	mib = strtol(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || mib < 0)
		return usage();
	if (argc >= 3) {
		delay = strtod(argv[2], &end);
		if (*argv[2] == '\0' || *end != '\0' || delay < 0)
			return usage();
	}
	if (argc == 4) {
		rate = strtod(argv[3], &end);
		if (*argv[3] == '\0' || *end != '\0' || rate <= 0)
			return usage();
	}

	if (delay > 0) {
		struct timespec ts = { (time_t)delay, (long)((delay - (time_t)delay) * 1e9) };
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}

	printf("hog: pid %d allocating %ld MiB\n", (int)getpid(), mib);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (long i = 0; i < mib; i++) {
		if (rate > 0) {
			/* MiB i is due at start + i / rate. */
			double due = i / rate;
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			double wait = due - ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9);
			if (wait > 0) {
				struct timespec ts = { (time_t)wait, (long)((wait - (time_t)wait) * 1e9) };
				while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
					;
			}
		}
		char *p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			perror("hog: mmap");
			return 1;
		}
		for (long off = 0; off < MIB; off += page)
			p[off] = 1;
	}
	printf("hog: touched %ld MiB and survived\n", mib);
	return 0;
}
